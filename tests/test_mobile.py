"""The React Native app in mobile/: its Jest suite, its type check, and its web build end to end.

The Jest suite (Jest + React Native Testing Library, API answers recorded from a real `nasfer serve`)
and `tsc` run through npm in mobile/. The end-to-end test exports the app for the web (React Native
Web, `expo export --platform web`, offline), serves it on 127.0.0.1 next to a real `nasfer serve`
(which allows the web build's origin with --cors-origins), and drives Debian's chromium at 360x740:
set the service in Settings, pick the astronaut photo through the gallery path, see the face boxed
and labelled as the service says. Screenshots go to tests/artifacts/.

Node and npm must be on PATH (the tests skip, with the reason, where they are not); `npm ci` is run
when mobile/node_modules is missing (.ci/run does it beforehand). Never runs `playwright install`.
"""

from __future__ import annotations

import functools
import http.server
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MOBILE = ROOT / "mobile"
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--no-first-run", "--disable-quic"]
PHONE = {"width": 360, "height": 740}

pytestmark = pytest.mark.slow

NODE, NPM, NPX = (shutil.which(name) for name in ("node", "npm", "npx"))
if not (NODE and NPM and NPX):
    pytest.skip("node/npm not found on PATH: install Node.js 20+ to test the mobile app", allow_module_level=True)


def _run(args: list[str], timeout: float, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=MOBILE, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "CI": "1", **(env or {})})


def _check(result: subprocess.CompletedProcess, what: str) -> None:
    assert result.returncode == 0, (f"{what} failed with status {result.returncode}\n--- stdout ---\n"
                                    f"{result.stdout[-20000:]}\n--- stderr ---\n{result.stderr[-20000:]}")


@pytest.fixture(scope="module")
def node_modules() -> Path:
    """mobile/node_modules, installed from the lock file if it is not there yet."""
    path = MOBILE / "node_modules"
    if not (path / ".package-lock.json").is_file():
        _check(_run([NPM, "ci", "--no-audit", "--no-fund"], timeout=900), "npm ci in mobile/")
    return path


def test_jest_suite_passes(node_modules):
    _check(_run([NPX, "jest", "--ci"], timeout=900), "the mobile app's Jest suite (npx jest --ci)")


def test_typescript_compiles(node_modules):
    _check(_run([NPX, "tsc", "--noEmit"], timeout=600), "the mobile app's type check (npx tsc --noEmit)")


# --------------------------------------------------------------------------------------------
# The web build against a real service, in chromium
# --------------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def web_build(node_modules, tmp_path_factory) -> Path:
    """The app exported for the web, from the current sources."""
    out = tmp_path_factory.mktemp("mobile-web")
    result = _run([NPX, "expo", "export", "--platform", "web", "--output-dir", str(out)], timeout=900,
                  env={"EXPO_OFFLINE": "1", "EXPO_NO_TELEMETRY": "1"})
    _check(result, "expo export --platform web")
    assert (out / "index.html").is_file()
    return out


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def web_origin(web_build):
    port = _free_port()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), functools.partial(_Quiet, directory=str(web_build)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def service(web_origin, tmp_path_factory):
    """A real `nasfer serve` (shipped model, Haar) on loopback that lets the web build call it."""
    port = _free_port()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "nasfer.cli", "serve", "--dev", "--port", str(port),
                                 "--cors-origins", web_origin], stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while True:
            try:
                urllib.request.urlopen(f"{base}/healthz", timeout=2).read()
                break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    pytest.fail(f"nasfer serve did not come up:\n{log.read_text()[-5000:]}")
                time.sleep(0.3)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def astronaut(tmp_path_factory) -> Path:
    """scikit-image's public-domain astronaut photo as a JPEG (one face, 512 x 512)."""
    from PIL import Image
    from skimage import data

    path = tmp_path_factory.mktemp("photos") / "astronaut.jpg"
    Image.fromarray(data.astronaut()).save(path, "JPEG", quality=90)
    return path


@pytest.fixture(scope="module")
def sideways_astronaut(tmp_path_factory) -> Path:
    """A 512 x 384 crop of the astronaut stored sideways (384 x 512 pixels) with EXIF orientation 6,
    as phone cameras save portrait shots: upright only when the orientation is applied."""
    from PIL import Image
    from skimage import data

    upright = Image.fromarray(data.astronaut()[:384])
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    path = tmp_path_factory.mktemp("photos") / "sideways.jpg"
    upright.transpose(Image.Transpose.ROTATE_90).save(path, "JPEG", quality=90, exif=exif)
    return path


def _post_photo(base: str, path: Path) -> dict:
    import requests

    with path.open("rb") as f:
        response = requests.post(f"{base}/v1/emotions", files={"image": ("photo.jpg", f, "image/jpeg")}, timeout=60)
    response.raise_for_status()
    return response.json()


def test_web_build_shows_the_face_boxed_with_its_label(web_origin, service, astronaut, sideways_astronaut, tmp_path):
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not found: install Debian's chromium (apt-get install chromium)")
    from playwright import sync_api
    expected = _post_photo(service, astronaut)
    assert len(expected["faces"]) == 1, expected
    label = expected["faces"][0]["label"]
    model = json.loads(urllib.request.urlopen(f"{service}/v1/model", timeout=10).read())
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    not_a_photo = tmp_path / "notes.jpg"
    not_a_photo.write_text("these are notes, not a photo")

    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS)
        try:
            context = browser.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True)
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            # The app asks its own origin's /healthz once, to see whether the page is served by nasfer: that
            # static server's 404 is the expected answer (the browser logs it), no other error is.
            probe = f"{web_origin}/healthz"
            page.on("console", lambda msg: msg.type == "error" and msg.location.get("url") != probe
                    and errors.append(f"{msg.text} ({msg.location.get('url')})"))
            page.goto(web_origin)

            # A static server is no nasfer service: the app asks for the service's address first (before,
            # it sent the first photo to the static server and showed "HTTP 501").
            page.get_by_text("This web page is not served by one", exact=False).wait_for(timeout=20_000)

            # Settings: point the app at the service; the check shows the model and its labels.
            page.get_by_role("tab", name="Settings").click()
            page.get_by_label("Service address").fill(service)
            page.get_by_role("button", name="Save and check connection").click()
            page.get_by_text(f"Model: {model['name']}").wait_for(timeout=20_000)
            page.get_by_text(f"Labels: {', '.join(model['labels'])}").wait_for()
            page.screenshot(path=str(ARTIFACTS / "mobile-web-settings.png"))

            # Capture: the gallery path is a file chooser in a browser. A file that is not a picture
            # is refused on the device with a clear message.
            page.get_by_role("tab", name="Capture").click()
            page.screenshot(path=str(ARTIFACTS / "mobile-web-capture.png"))
            with page.expect_file_chooser() as chooser:
                page.get_by_role("button", name="Pick from gallery").click()
            chooser.value.set_files(str(not_a_photo))
            page.get_by_role("alert").get_by_text("could not be opened on the device", exact=False).wait_for(timeout=20_000)
            with page.expect_file_chooser() as chooser:
                page.get_by_role("button", name="Pick from gallery").click()
            chooser.value.set_files(str(astronaut))
            page.get_by_text(f"1 face: {label}").wait_for(timeout=60_000)

            # The face is boxed where the service found it, with its label on the box.
            box = page.get_by_test_id("face-box-1")
            box.wait_for()
            caption = page.get_by_test_id("face-caption-1")
            assert caption.inner_text().startswith(f"1 {label} "), caption.inner_text()
            assert caption.evaluate("el => el.scrollWidth <= el.clientWidth"), "the caption on the box is cut off"
            assert caption.bounding_box()["y"] < box.bounding_box()["y"], "the caption is not above the box"
            photo = page.get_by_test_id("face-photo").bounding_box()
            drawn = box.bounding_box()
            x, y, w, h = expected["faces"][0]["box"]
            scale = photo["width"] / expected["image"]["width"]
            assert abs(drawn["x"] - (photo["x"] + x * scale)) < 4, (drawn, photo)
            assert abs(drawn["y"] - (photo["y"] + y * scale)) < 4, (drawn, photo)
            assert abs(drawn["width"] - w * scale) < 4 and abs(drawn["height"] - h * scale) < 4, (drawn, scale)
            # the photo itself is drawn (not a broken image) and fits the small screen
            assert page.evaluate("() => [...document.images].some(i => i.complete && i.naturalWidth > 0)")
            assert page.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]
            # one bar per label of the model
            bars = page.locator("[aria-label$=' percent']")
            assert bars.count() == len(model["labels"])
            page.screenshot(path=str(ARTIFACTS / "mobile-web-result.png"))

            # The result is in the history.
            page.get_by_role("tab", name="History").click()
            page.get_by_role("button", name=f"1 face: {label}", exact=False).first.wait_for()
            page.screenshot(path=str(ARTIFACTS / "mobile-web-history.png"))

            # A phone-style photo stored sideways with EXIF orientation 6 is sent and shown upright.
            page.get_by_role("tab", name="Capture").click()
            with page.expect_file_chooser() as chooser:
                page.get_by_role("button", name="Pick from gallery").click()
            chooser.value.set_files(str(sideways_astronaut))
            page.get_by_text(f"1 face: {label}").wait_for(timeout=60_000)
            page.get_by_test_id("face-box-1").wait_for()
            shown = page.get_by_test_id("face-photo").bounding_box()
            assert abs(shown["width"] / shown["height"] - 512 / 384) < 0.02, shown
            assert not errors, errors
        finally:
            browser.close()


@pytest.fixture(scope="module")
def astronaut_video(astronaut, tmp_path_factory) -> Path:
    """A Y4M clip of the astronaut photo, fed to chromium as its fake camera."""
    import numpy as np
    from PIL import Image

    rgb = np.asarray(Image.open(astronaut).convert("RGB"), dtype=np.float32)
    h, w = rgb.shape[:2]
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    y = (0.257 * r + 0.504 * g + 0.098 * b + 16).clip(0, 255).astype(np.uint8)
    u = (-0.148 * r - 0.291 * g + 0.439 * b + 128).reshape(h // 2, 2, w // 2, 2).mean((1, 3)).clip(0, 255)
    v = (0.439 * r - 0.368 * g - 0.071 * b + 128).reshape(h // 2, 2, w // 2, 2).mean((1, 3)).clip(0, 255)
    frame = b"FRAME\n" + y.tobytes() + u.astype(np.uint8).tobytes() + v.astype(np.uint8).tobytes()
    path = tmp_path_factory.mktemp("camera") / "astronaut.y4m"
    path.write_bytes(f"YUV4MPEG2 W{w} H{h} F10:1 Ip A1:1 C420jpeg\n".encode() + frame * 10)
    return path


def test_web_build_camera_path(web_origin, service, astronaut_video):
    """Take a photo with the (fake) camera: permission, preview, front/back switch, shutter, result."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not found: install Debian's chromium (apt-get install chromium)")
    from playwright import sync_api
    camera_args = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                   f"--use-file-for-fake-video-capture={astronaut_video}"]
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=[*LAUNCH_ARGS, *camera_args])
        try:
            context = browser.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True,
                                          permissions=["camera"])
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(web_origin)
            page.get_by_role("tab", name="Settings").click()
            page.get_by_label("Service address").fill(service)
            page.get_by_role("button", name="Save and check connection").click()
            page.get_by_text("Connected").wait_for(timeout=20_000)

            page.get_by_role("tab", name="Capture").click()
            page.get_by_role("button", name="Take a photo").click()
            allow = page.get_by_role("button", name="Allow camera")
            shutter = page.get_by_role("button", name="Take photo")
            allow.or_(shutter).first.wait_for(timeout=20_000)
            if allow.is_visible():
                allow.click()
            page.get_by_label("Camera preview, back camera").wait_for(timeout=20_000)
            page.get_by_role("button", name="Switch to the front camera").click()
            page.get_by_label("Camera preview, front camera").wait_for()
            page.wait_for_function("() => { const v = document.querySelector('video'); "
                                   "return v && v.readyState >= 2 && v.videoWidth > 0; }", timeout=20_000)
            page.wait_for_function("() => { const b = [...document.querySelectorAll('[role=button]')]"
                                   ".find(e => e.getAttribute('aria-label') === 'Take photo');"
                                   "return b && b.getAttribute('aria-disabled') !== 'true'; }", timeout=20_000)
            page.screenshot(path=str(ARTIFACTS / "mobile-web-camera.png"))
            shutter.click()
            page.get_by_text("1 face:", exact=False).wait_for(timeout=60_000)
            page.get_by_test_id("face-box-1").wait_for()
            assert not errors, errors
        finally:
            browser.close()
