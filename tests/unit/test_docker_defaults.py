"""Defaults that work in the Docker image: everything the bridge writes by default lands in its
working directory, and the image's working directory is a volume its user owns.

(No Docker engine runs the tests: the Dockerfile is read, not built.)
"""

import json
import os
import re

from bridge.app import Bridge
from bridge.config import parse_config
from bridge.silc.pubkey import PRIVATE_FILE, load_or_create_key_pair

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")

MINIMAL = """\
component: {jid: bridge.example.org, secret: x}
networks:
  silcnet: {type: silc, host: silc.example.net}
links:
  l: [{xmpp: room@conference.example.org}, {silc: silcnet/room}]
"""


def test_default_store_and_key_dir_land_in_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = parse_config(MINIMAL)
    bridge = Bridge(config)
    bridge.store.close()
    silc = config.networks["silcnet"]
    load_or_create_key_pair(silc.key_dir, silc.username)
    assert (tmp_path / "muc-bridge.db").is_file()
    assert (tmp_path / "silc-keys" / PRIVATE_FILE).is_file()


def test_the_image_works_in_a_volume_its_user_owns():
    text = open(os.path.join(ROOT, "Dockerfile")).read()
    user = re.findall(r"^USER (\S+)", text, re.M)[-1]
    workdir = re.findall(r"^WORKDIR (\S+)", text, re.M)[-1]
    assert user != "root"
    # The final working directory (where relative defaults land) is a volume...
    assert workdir in re.findall(r'^VOLUME \[?(.*?)\]?$', text, re.M)[-1].replace('"', "")
    # ...that the image's user owns and the USER line comes before.
    assert re.search(rf"chown {user}(:\S+)? {re.escape(workdir)}\b", text)
    assert text.index(f"USER {user}") < text.rindex(f"WORKDIR {workdir}")


def test_the_healthcheck_asks_the_health_endpoint_of_the_config_the_image_runs():
    text = open(os.path.join(ROOT, "Dockerfile")).read()
    check = re.search(r"^HEALTHCHECK .*?CMD (\[.*?\])$", text, re.M | re.S)
    run = re.findall(r"^CMD (\[.*\])$", text, re.M)[-1]
    assert check and json.loads(check[1])[:2] == ["muc-bridge", "health"]  # tests/unit/test_health_command.py
    assert json.loads(check[1])[2:] == json.loads(run)[1:] == ["--config", "/config/config.yaml"]
