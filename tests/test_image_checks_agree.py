"""The proxy's ``/check_images`` (what the preflight asks every proxy) and its reward endpoint refuse the same
images: one loader for both (``proxy_service.app._load_checked_image``). ``/check_images`` once opened images
with the plain loader, so the preflight passed an image whose aspect ratio every reward call refused (422)."""

from __future__ import annotations

import io
from pathlib import Path

import httpx
from PIL import Image
from reward_stub_proxy import start_stub

from proxy_grm.proxy_contract import CHECK_IMAGES_PATH, REWARD_PATH, route_url

PICK1 = "PICK1 the colour"


def test_check_images_refuses_exactly_what_the_reward_endpoint_refuses(tmp_path: Path) -> None:
    server, base = start_stub(tmp_path)
    try:
        root = tmp_path / "stub-images"
        Image.new("RGB", (40, 40), "red").save(root / "square.png")
        Image.new("RGB", (2010, 5), "red").save(root / "wide.png")  # aspect ratio 402 > 200
        png = io.BytesIO()
        Image.new("RGB", (64, 64), "red").save(png, format="PNG")
        (root / "truncated.png").write_bytes(png.getvalue()[: len(png.getvalue()) // 2])
        names = ["square.png", "wide.png", "truncated.png", "missing.png"]
        with httpx.Client(timeout=60) as client:
            checked = client.post(route_url(base, CHECK_IMAGES_PATH), json={"images": names}).json()
            refused_by_check = {entry["image"] for entry in checked["unreadable"]}
            refused_by_reward = set()
            for name in names:
                item = {"question": "Colour?", "chosen": "Red.", "rejected": "Blue.", "image": name, "answer": "1",
                        "rubric": PICK1}
                status = client.post(route_url(base, REWARD_PATH), json=item).status_code
                assert status in (200, 422), status
                if status == 422:
                    refused_by_reward.add(name)
        assert refused_by_check == refused_by_reward == {"wide.png", "truncated.png", "missing.png"}
        reasons = {entry["image"]: entry["reason"] for entry in checked["unreadable"]}
        assert "aspect ratio 402 is above 200" in reasons["wide.png"]
    finally:
        server.stop()
