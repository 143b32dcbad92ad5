/* nasfer web client: photo in (camera, live preview or gallery), faces boxed and labelled out.
 * Plain JS, no dependencies. The photo is shrunk on the phone before upload (faster on mobile
 * networks, and the server's box coordinates then match the canvas one to one). */
(() => {
  "use strict";

  const MAX_SIDE = 1280;          // longest side sent to the server, in pixels
  const JPEG_QUALITY = 0.9;
  const API = "v1/emotions";      // relative: works when the app is mounted under a path prefix
  const COLORS = {
    angry: "#e5484d", disgust: "#7c9a1f", fear: "#8e4ec6", happy: "#f5a524",
    sad: "#3e7bfa", surprise: "#12a594", neutral: "#8b8d98",
  };
  const FALLBACK_COLORS = ["#e5484d", "#f5a524", "#3e7bfa", "#12a594", "#8e4ec6", "#7c9a1f", "#8b8d98"];

  const $ = (id) => document.getElementById(id);
  const el = {
    canvas: $("canvas"), placeholder: $("placeholder"), busy: $("busy"), status: $("status"),
    faces: $("faces"), take: $("take-input"), pick: $("pick-input"), live: $("live-button"),
    camera: $("camera"), video: $("video"), shutter: $("shutter"), flip: $("camera-flip"),
    close: $("camera-close"),
  };
  const maxUploadBytes = (parseFloat(document.body.dataset.maxUploadMb) || 10) * 1024 * 1024;

  const state = { photo: null, faces: [], selected: -1, stream: null, facing: "user", busy: false };

  // ---- status line -------------------------------------------------------------------------
  function setStatus(text, kind = "") {
    el.status.textContent = text;
    el.status.className = "status" + (kind ? " " + kind : "");
  }

  function setBusy(on) {
    state.busy = on;
    el.busy.hidden = !on;
    el.shutter.disabled = on;
  }

  // ---- image loading and shrinking ---------------------------------------------------------
  async function decodeFile(file) {
    // createImageBitmap applies the EXIF orientation, so a portrait phone photo stays upright.
    if (window.createImageBitmap) {
      try {
        return await createImageBitmap(file, { imageOrientation: "from-image" });
      } catch (_) { /* fall back to <img> below (older Safari) */ }
    }
    const url = URL.createObjectURL(file);
    try {
      const img = new Image();
      img.decoding = "async";
      img.src = url;
      await img.decode();
      return img;
    } finally {
      URL.revokeObjectURL(url);
    }
  }

  function sourceSize(source) {
    return {
      w: source.videoWidth || source.naturalWidth || source.width,
      h: source.videoHeight || source.naturalHeight || source.height,
    };
  }

  /** Draw `source` scaled to at most MAX_SIDE into a new canvas. */
  function shrink(source) {
    const { w, h } = sourceSize(source);
    const scale = Math.min(1, MAX_SIDE / Math.max(w, h));
    const canvas = document.createElement("canvas");
    canvas.width = Math.max(1, Math.round(w * scale));
    canvas.height = Math.max(1, Math.round(h * scale));
    const ctx = canvas.getContext("2d");
    ctx.imageSmoothingQuality = "high";
    ctx.drawImage(source, 0, 0, canvas.width, canvas.height);
    return canvas;
  }

  function toJpeg(canvas) {
    return new Promise((resolve, reject) => {
      canvas.toBlob((blob) => (blob ? resolve(blob) : reject(new Error("could not encode the photo"))),
        "image/jpeg", JPEG_QUALITY);
    });
  }

  // ---- talking to the API ------------------------------------------------------------------
  async function analyse(blob, filename) {
    const body = new FormData();
    body.append("image", blob, filename);
    let response;
    try {
      response = await fetch(API, { method: "POST", body, headers: { Accept: "application/json" } });
    } catch (_) {
      throw new Error(navigator.onLine === false
        ? "You are offline. Connect to the internet and try again."
        : "Could not reach the server. Check your connection and try again.");
    }
    let data = null;
    try { data = await response.json(); } catch (_) { /* not JSON: handled below */ }
    if (!response.ok) {
      const message = data && data.error && data.error.message;
      throw new Error(message ? capitalise(message) + "." : `The server answered ${response.status}.`);
    }
    if (!data || !Array.isArray(data.faces)) throw new Error("The server sent an unexpected answer.");
    return data;
  }

  // ---- the whole flow ----------------------------------------------------------------------
  async function handleSource(source, filename) {
    if (state.busy) return;
    setBusy(true);
    setStatus("");
    clearFaces();
    try {
      const canvas = shrink(source);
      showPhoto(canvas);
      const blob = await toJpeg(canvas);
      const data = await analyse(blob, filename);
      showResult(canvas, data);
    } catch (err) {
      setStatus(err.message || String(err), "error");
    } finally {
      setBusy(false);
    }
  }

  async function handleFile(file) {
    if (!file) return;
    if (state.busy) return;
    let source;
    try {
      source = await decodeFile(file);
    } catch (_) {
      // The browser cannot show it (e.g. HEIC on some phones): let the server judge the original.
      if (file.size > maxUploadBytes) {
        setStatus(`This photo is too large (${(file.size / 1048576).toFixed(1)} MB) and this browser cannot shrink it.`, "error");
        return;
      }
      resetStage();
      setBusy(true);
      try {
        await analyse(file, file.name || "photo");
        setStatus("The photo was analysed but this browser cannot display it. Try a JPEG or PNG.", "warn");
      } catch (err) {
        setStatus(err.message || String(err), "error");
      } finally {
        setBusy(false);
      }
      return;
    }
    await handleSource(source, "photo.jpg");
    if (source.close) source.close();
  }

  // ---- drawing ------------------------------------------------------------------------------
  function showPhoto(canvas) {
    state.photo = canvas;
    state.faces = [];
    state.selected = -1;
    el.placeholder.hidden = true;
    el.canvas.hidden = false;
    el.canvas.width = canvas.width;
    el.canvas.height = canvas.height;
    el.canvas.getContext("2d").drawImage(canvas, 0, 0);
    el.canvas.setAttribute("aria-label", "Your photo, being analysed");
  }

  function boxOf(face) {
    const b = face.box;
    if (Array.isArray(b)) return { x: b[0], y: b[1], w: b[2], h: b[3] };
    return { x: b.x, y: b.y, w: b.w ?? b.width, h: b.h ?? b.height };
  }

  function colorOf(label, i) {
    return COLORS[label] || FALLBACK_COLORS[i % FALLBACK_COLORS.length];
  }

  function pct(p) { return `${Math.round(p * 100)}%`; }
  function capitalise(s) { return s ? s.charAt(0).toUpperCase() + s.slice(1) : s; }

  function redraw() {
    const canvas = el.canvas;
    const ctx = canvas.getContext("2d");
    ctx.drawImage(state.photo, 0, 0);
    const unit = Math.max(canvas.width, canvas.height) / 640;
    const lineWidth = Math.max(2, Math.round(3 * unit));
    const fontPx = Math.max(13, Math.round(17 * unit));
    ctx.font = `600 ${fontPx}px system-ui, -apple-system, "Segoe UI", Roboto, sans-serif`;
    ctx.textBaseline = "top";
    state.faces.forEach((face, i) => {
      const { x, y, w, h } = boxOf(face);
      const color = colorOf(face.label, i);
      const selected = i === state.selected;
      ctx.lineWidth = selected ? lineWidth * 2 : lineWidth;
      ctx.strokeStyle = color;
      ctx.setLineDash(face.uncertain ? [lineWidth * 3, lineWidth * 2] : []);
      ctx.strokeRect(x, y, w, h);
      ctx.setLineDash([]);
      const text = `${state.faces.length > 1 ? i + 1 + " · " : ""}${face.label} ${pct(face.confidence)}${face.uncertain ? " ?" : ""}`;
      const pad = Math.round(fontPx * 0.3);
      const tw = ctx.measureText(text).width + pad * 2;
      const th = fontPx + pad * 2;
      let ty = y - th;
      if (ty < 0) ty = Math.min(canvas.height - th, y + h);  // no room above: put it below the box
      const tx = Math.min(Math.max(0, x - ctx.lineWidth / 2), Math.max(0, canvas.width - tw));
      ctx.fillStyle = color;
      ctx.fillRect(tx, ty, tw, th);
      ctx.fillStyle = "#ffffff";
      ctx.fillText(text, tx + pad, ty + pad);
    });
  }

  function clearFaces() {
    el.faces.replaceChildren();
  }

  function resetStage() {
    clearFaces();
    state.photo = null;
    state.faces = [];
    el.canvas.hidden = true;
    el.placeholder.hidden = false;
    el.canvas.setAttribute("aria-label", "No photo yet");
  }

  function showResult(canvas, data) {
    state.faces = data.faces;
    state.selected = -1;
    redraw();
    const n = data.faces.length;
    if (n === 0) {
      el.canvas.setAttribute("aria-label", "Your photo: no face found");
      setStatus("No face found. Face the camera in good light, come a little closer, and try again.", "warn");
      return;
    }
    const summary = data.faces.map((f, i) => `face ${i + 1}: ${f.label} ${pct(f.confidence)}`).join(", ");
    el.canvas.setAttribute("aria-label", `Your photo with ${n} face${n > 1 ? "s" : ""}: ${summary}`);
    const uncertain = data.faces.filter((f) => f.uncertain).length;
    setStatus(`${n} face${n > 1 ? "s" : ""} found` + (uncertain ? ` (${uncertain} uncertain)` : "") + ".", "ok");
    const labels = (data.model && data.model.labels) || Object.keys(data.faces[0].scores);
    data.faces.forEach((face, i) => el.faces.appendChild(faceCard(face, i, labels)));
    requestAnimationFrame(() => {
      el.faces.querySelectorAll(".fill").forEach((fill) => { fill.style.width = fill.dataset.width; });
    });
  }

  function faceCard(face, i, labels) {
    const color = colorOf(face.label, i);
    const card = document.createElement("button");
    card.type = "button";
    card.className = "face-card";
    card.style.setProperty("--face-color", color);
    card.setAttribute("aria-pressed", "false");
    card.dataset.index = String(i);

    const title = document.createElement("p");
    title.className = "face-title";
    const swatch = document.createElement("span");
    swatch.className = "face-swatch";
    const name = document.createElement("span");
    name.textContent = `Face ${i + 1}:`;
    const top = document.createElement("span");
    top.className = "top";
    top.textContent = face.label;
    title.append(swatch, name, top);
    if (face.uncertain) {
      const u = document.createElement("span");
      u.className = "uncertain";
      u.textContent = "uncertain";
      title.append(u);
    }
    const p = document.createElement("span");
    p.className = "pct";
    p.textContent = pct(face.confidence);
    title.append(p);

    const list = document.createElement("ul");
    list.className = "bars";
    for (const label of labels) {
      const value = Number(face.scores[label] || 0);
      const li = document.createElement("li");
      li.className = "bar" + (label === face.label ? " top" : "");
      li.style.setProperty("--bar-color", colorOf(label, labels.indexOf(label)));
      li.setAttribute("aria-label", `${label} ${pct(value)}`);
      const n = document.createElement("span");
      n.className = "name";
      n.textContent = label;
      const track = document.createElement("span");
      track.className = "track";
      const fill = document.createElement("span");
      fill.className = "fill";
      fill.dataset.width = `${(value * 100).toFixed(1)}%`;
      track.append(fill);
      const v = document.createElement("span");
      v.className = "value";
      v.textContent = pct(value);
      li.append(n, track, v);
      list.append(li);
    }
    card.append(title, list);
    card.addEventListener("click", () => select(i));
    return card;
  }

  function select(i) {
    state.selected = state.selected === i ? -1 : i;
    el.faces.querySelectorAll(".face-card").forEach((card) => {
      card.setAttribute("aria-pressed", String(Number(card.dataset.index) === state.selected));
    });
    redraw();
  }

  // tapping a box on the photo selects its card
  el.canvas.addEventListener("click", (event) => {
    if (!state.faces.length) return;
    const rect = el.canvas.getBoundingClientRect();
    const x = (event.clientX - rect.left) * (el.canvas.width / rect.width);
    const y = (event.clientY - rect.top) * (el.canvas.height / rect.height);
    const hit = state.faces.findIndex((f) => {
      const b = boxOf(f);
      return x >= b.x && x <= b.x + b.w && y >= b.y && y <= b.y + b.h;
    });
    if (hit >= 0) {
      select(hit);
      const card = el.faces.querySelector(`[data-index="${hit}"]`);
      if (card) card.scrollIntoView({ block: "nearest", behavior: "smooth" });
    }
  });

  // ---- file inputs --------------------------------------------------------------------------
  for (const input of [el.take, el.pick]) {
    input.addEventListener("change", () => {
      const file = input.files && input.files[0];
      input.value = "";  // choosing the same photo again still fires "change"
      handleFile(file);
    });
  }

  // ---- live camera --------------------------------------------------------------------------
  const canLive = !!(window.isSecureContext && navigator.mediaDevices && navigator.mediaDevices.getUserMedia);
  el.live.hidden = !canLive;

  async function openCamera() {
    stopCamera();
    try {
      state.stream = await navigator.mediaDevices.getUserMedia({
        audio: false,
        video: { facingMode: state.facing, width: { ideal: 1280 }, height: { ideal: 960 } },
      });
    } catch (err) {
      const name = err && err.name;
      const message = name === "NotAllowedError" ? "Camera permission was denied. Use \u201cTake photo\u201d instead, or allow the camera in your browser settings."
        : name === "NotFoundError" || name === "OverconstrainedError" ? "No camera was found. Use \u201cTake photo\u201d or \u201cGallery\u201d instead."
        : name === "NotReadableError" ? "The camera is in use by another app."
        : "The camera could not be opened. Use \u201cTake photo\u201d instead.";
      setStatus(message, "error");
      closeCamera();
      return;
    }
    el.video.srcObject = state.stream;
    el.video.classList.toggle("mirrored", state.facing === "user");
    el.camera.hidden = false;
    try { await el.video.play(); } catch (_) { /* autoplay rules: the stream still shows */ }
    el.shutter.focus();
  }

  function stopCamera() {
    if (state.stream) state.stream.getTracks().forEach((t) => t.stop());
    state.stream = null;
    el.video.srcObject = null;
  }

  function closeCamera() {
    stopCamera();
    el.camera.hidden = true;
  }

  async function shoot() {
    if (!state.stream || state.busy) return;
    if (!el.video.videoWidth) {
      setStatus("The camera is still starting. Try again in a moment.", "warn");
      return;
    }
    const frame = document.createElement("canvas");
    frame.width = el.video.videoWidth;
    frame.height = el.video.videoHeight;
    frame.getContext("2d").drawImage(el.video, 0, 0);
    closeCamera();
    await handleSource(frame, "camera.jpg");
  }

  el.live.addEventListener("click", openCamera);
  el.shutter.addEventListener("click", shoot);
  el.close.addEventListener("click", closeCamera);
  el.flip.addEventListener("click", () => {
    state.facing = state.facing === "user" ? "environment" : "user";
    openCamera();
  });
  document.addEventListener("keydown", (event) => {
    if (el.camera.hidden) return;
    if (event.key === "Escape") closeCamera();
    if (event.key === " " || event.key === "Enter") { event.preventDefault(); shoot(); }
  });
  // Release the camera when the page is hidden (app switch, screen off).
  document.addEventListener("visibilitychange", () => {
    if (document.hidden && state.stream) closeCamera();
  });

  // ---- offline shell ------------------------------------------------------------------------
  if ("serviceWorker" in navigator && window.isSecureContext) {
    window.addEventListener("load", () => {
      navigator.serviceWorker.register("sw.js").catch(() => { /* the page works without it */ });
    });
  }

  window.nasfer = { handleFile, state };  // for debugging from the console
})();
