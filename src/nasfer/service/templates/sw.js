/* nasfer service worker: keeps the web client's shell available offline.
 * The cache name carries a hash of the static files, so a deploy that changes them replaces
 * the old cache. API calls (POST /v1/emotions, /metrics, ...) always go to the network. */
"use strict";

const CACHE = "nasfer-shell-{{ version }}";
const SCOPE = self.registration.scope;
const SHELL = [
  "./",
  "static/app.css?v={{ version }}",
  "static/app.js?v={{ version }}",
  "manifest.webmanifest",
  "static/icons/icon-192.png?v={{ version }}",
  "static/icons/icon-192.png",
  "static/icons/icon-512.png",
].map((path) => new URL(path, SCOPE).href);

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches.keys()
      .then((keys) => Promise.all(keys.filter((k) => k.startsWith("nasfer-shell-") && k !== CACHE).map((k) => caches.delete(k))))
      .then(() => self.clients.claim())
  );
});

self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET") return;                 // uploads: straight to the network
  const url = new URL(request.url);
  if (url.origin !== self.location.origin || !request.url.startsWith(SCOPE)) return;
  if (request.mode === "navigate") {
    // The page: network first (fresh after a deploy), the cached shell when offline.
    event.respondWith(
      fetch(request)
        .then((response) => {
          if (response.ok && url.href === new URL("./", SCOPE).href) {
            const copy = response.clone();
            caches.open(CACHE).then((cache) => cache.put(request, copy));
          }
          return response;
        })
        .catch(() => caches.match(new URL("./", SCOPE).href))
    );
    return;
  }
  if (SHELL.includes(url.href)) {
    event.respondWith(caches.match(request).then((hit) => hit || fetch(request)));
  }
});
