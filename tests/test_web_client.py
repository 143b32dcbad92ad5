"""The mobile web client in a real browser: Debian's chromium driven by playwright.

A live server (werkzeug, in a thread, on 127.0.0.1) runs the app with the real Haar detector and the
real emotion model when one is available (tiny_onnx fixture or the shipped default); before
`nasfer.runtime.api` exists it falls back to real Haar detection with fixed scores, so the page is still
tested end to end. The browser is a phone-sized touch viewport. Screenshots go to tests/artifacts/.

Never runs `playwright install`: chromium comes from apt (`apt-get install chromium`) and the
tests skip with a reason when /usr/bin/chromium is absent.
"""

from __future__ import annotations

import io
import os
import shutil
import socket
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fixtures_service import LABELS, face_photo, find_model, image_bytes
from nasfer.service.app import create_app
from nasfer.service.config import ServeConfig
from nasfer.service.metrics import Metrics

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "tests" / "artifacts"
DOCS_SCREENSHOT = ROOT / "docs" / "screenshot-web-client.png"
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--no-first-run"]

pytestmark = [pytest.mark.browser, pytest.mark.slow]

if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} not found: install Debian's chromium (apt-get install chromium) to run "
                f"the browser tests", allow_module_level=True)
from playwright import sync_api  # noqa: E402  (dev extra; only the browser may be absent)


@pytest.fixture(scope="module")
def app_under_test():
    model = find_model()
    app = create_app(ServeConfig(model=str(model), threads=2), metrics=Metrics())
    app.config["NASFER_TEST_MODEL"] = str(model)
    return app


@pytest.fixture(scope="module")
def live_server(app_under_test):
    from werkzeug.serving import make_server

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = make_server("127.0.0.1", port, app_under_test, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.shutdown()
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def face_jpeg():
    return face_photo()


@pytest.fixture(scope="module")
def face_video(face_jpeg, tmp_path_factory) -> Path:
    """A Y4M clip of the face photo, fed to chromium as its fake camera."""
    rgb = np.asarray(Image.open(io.BytesIO(face_jpeg)).convert("RGB"), dtype=np.float32)
    h, w = rgb.shape[:2]
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    y = (0.257 * r + 0.504 * g + 0.098 * b + 16).clip(0, 255).astype(np.uint8)
    u = (-0.148 * r - 0.291 * g + 0.439 * b + 128).reshape(h // 2, 2, w // 2, 2).mean((1, 3)).clip(0, 255).astype(np.uint8)
    v = (0.439 * r - 0.368 * g - 0.071 * b + 128).reshape(h // 2, 2, w // 2, 2).mean((1, 3)).clip(0, 255).astype(np.uint8)
    frame = b"FRAME\n" + y.tobytes() + u.tobytes() + v.tobytes()
    path = tmp_path_factory.mktemp("camera") / "face.y4m"
    path.write_bytes(f"YUV4MPEG2 W{w} H{h} F10:1 Ip A1:1 C420jpeg\n".encode() + frame * 10)
    return path


def _launch(playwright, extra_args=()):
    return playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                      args=[*LAUNCH_ARGS, *extra_args])


def _phone(browser, **kw):
    context = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2,
                                  is_mobile=True, has_touch=True, **kw)
    page = context.new_page()
    page.console_errors = []  # type: ignore[attr-defined]
    page.on("console", lambda msg: msg.type == "error" and page.console_errors.append(msg.text))
    page.on("pageerror", lambda exc: page.console_errors.append(str(exc)))
    return context, page


def _screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    return path


def _box_edge_color(page, face_index=0):
    """The RGB drawn on the canvas at the middle of the left edge of a face box."""
    return page.evaluate("""(i) => {
        const f = window.nasfer.state.faces[i];
        const b = Array.isArray(f.box) ? {x: f.box[0], y: f.box[1], w: f.box[2], h: f.box[3]}
                                       : {x: f.box.x, y: f.box.y, w: f.box.w ?? f.box.width, h: f.box.h ?? f.box.height};
        const ctx = document.getElementById('canvas').getContext('2d');
        return Array.from(ctx.getImageData(Math.round(b.x), Math.round(b.y + b.h / 2), 1, 1).data.slice(0, 3));
    }""", face_index)


def _expect_face_result(page):
    page.wait_for_selector(".face-card", timeout=30_000)
    status = page.inner_text("#status")
    assert "1 face found" in status, status
    label = page.text_content(".face-card .top").strip()
    assert label in LABELS
    bars = page.query_selector_all(".face-card .bar")
    assert len(bars) == len(LABELS)
    # The box was drawn on the photo in the label's colour (grey background underneath).
    r, g, b = _box_edge_color(page)
    assert not (abs(r - g) < 12 and abs(g - b) < 12), f"no coloured box edge on the canvas: {(r, g, b)}"
    assert page.get_attribute("#canvas", "aria-label").startswith("Your photo with 1 face")
    # The winning emotion's bar grows to its share of the card (after its CSS transition).
    page.wait_for_function("""() => {
        const fill = document.querySelector('.face-card .bar.top .fill');
        return fill && fill.getBoundingClientRect().width >= 0.9 * parseFloat(fill.dataset.width) / 100
                                                               * fill.parentElement.getBoundingClientRect().width;
    }""", timeout=5_000)
    return label


def test_upload_a_photo_shows_boxes_labels_and_bars(live_server, face_jpeg):
    with sync_api.sync_playwright() as p:
        browser = _launch(p)
        try:
            context, page = _phone(browser)
            page.goto(live_server)
            assert page.is_visible("text=Take photo") and page.is_visible("text=Gallery")
            assert page.get_attribute("#take-input", "capture") == "user"
            page.set_input_files("#pick-input", files=[{"name": "face.jpg", "mimeType": "image/jpeg",
                                                        "buffer": face_jpeg}])
            label = _expect_face_result(page)
            shot = _screenshot(page, "web-client-upload.png")
            if os.environ.get("NASFER_UPDATE_SCREENSHOT") or not DOCS_SCREENSHOT.exists():
                DOCS_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(shot, DOCS_SCREENSHOT)
            # Tapping the card selects the face (aria-pressed), tapping again deselects it.
            page.click(".face-card")
            assert page.get_attribute(".face-card", "aria-pressed") == "true"
            assert label in page.text_content(".face-card")
            assert page.console_errors == []
        finally:
            browser.close()


def test_no_face_and_error_messages(live_server):
    with sync_api.sync_playwright() as p:
        browser = _launch(p)
        try:
            context, page = _phone(browser)
            page.goto(live_server)
            page.set_input_files("#pick-input", files=[{"name": "wall.png", "mimeType": "image/png",
                                                        "buffer": image_bytes("PNG", size=(320, 240))}])
            page.wait_for_selector("#status.warn", timeout=30_000)
            assert "No face found" in page.inner_text("#status")
            assert page.query_selector_all(".face-card") == []
            _screenshot(page, "web-client-no-face.png")

            # Not a picture: the browser cannot decode it, the server refuses it, the page says why.
            page.set_input_files("#pick-input", files=[{"name": "notes.jpg", "mimeType": "image/jpeg",
                                                        "buffer": b"this is not an image"}])
            page.wait_for_selector("#status.error", timeout=30_000)
            assert "not a JPEG, PNG, WebP, GIF, BMP or TIFF image" in page.inner_text("#status")
            _screenshot(page, "web-client-error.png")
        finally:
            browser.close()


def test_live_camera_preview_and_shutter(live_server, face_video):
    with sync_api.sync_playwright() as p:
        browser = _launch(p, ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
                              f"--use-file-for-fake-video-capture={face_video}"])
        try:
            context, page = _phone(browser)
            context.grant_permissions(["camera"], origin=live_server.rstrip("/"))
            page.goto(live_server)
            page.wait_for_selector("#live-button:not([hidden])", timeout=10_000)
            page.click("#live-button")
            page.wait_for_selector("#camera:not([hidden])")
            page.wait_for_function("() => document.getElementById('video').videoWidth > 0", timeout=15_000)
            _screenshot(page, "web-client-camera.png")
            page.click("#shutter")
            assert page.is_hidden("#camera")
            _expect_face_result(page)
            _screenshot(page, "web-client-camera-result.png")
            assert page.evaluate("document.getElementById('video').srcObject") is None  # camera released
            assert page.console_errors == []
        finally:
            browser.close()


def test_pwa_installs_its_service_worker_and_works_offline(live_server):
    with sync_api.sync_playwright() as p:
        browser = _launch(p)
        try:
            context, page = _phone(browser)
            page.goto(live_server)
            page.evaluate("navigator.serviceWorker.ready.then(() => true)")
            page.wait_for_function("""async () => {
                const keys = await caches.keys();
                if (!keys.some(k => k.startsWith('nasfer-shell-'))) return false;
                const cache = await caches.open(keys.find(k => k.startsWith('nasfer-shell-')));
                return (await cache.keys()).length >= 5;
            }""", timeout=15_000)
            manifest = page.evaluate("fetch('manifest.webmanifest').then(r => r.json())")
            assert {icon["sizes"] for icon in manifest["icons"]} >= {"192x192", "512x512"}
            context.set_offline(True)
            page.reload()
            assert page.is_visible("text=Take photo")  # the shell comes from the service worker's cache
            assert page.evaluate("getComputedStyle(document.querySelector('.actions')).position") == "fixed"
        finally:
            browser.close()
