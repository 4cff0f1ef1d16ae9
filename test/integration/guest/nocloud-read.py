"""Reads a NoCloud seed image with cloud-init's own NoCloud datasource; prints what it found as JSON.

Usage: PYTHONPATH=<cloud-init dist-packages> /usr/bin/python3 nocloud-read.py IMAGE

Two host-specific steps are replaced, the rest is cloud-init's code: finding devices
(util.find_devs_with, which runs blkid over block devices) asks blkid about IMAGE only, and
mounting (util.mount_cb) extracts IMAGE with xorriso, as there are no loop devices here. The kernel's
own mount of such an image is what the tiny-guest VM test covers.
"""
import json
import shutil
import subprocess
import sys
import tempfile

from cloudinit import distros, helpers, settings, util
from cloudinit.sources import DataSourceNoCloud

IMAGE = sys.argv[1]


def find_devs_with(criteria=None, *args, **kwargs):
    key, _, want = (criteria or "").partition("=")
    out = subprocess.run(["blkid", "-p", "-o", "export", IMAGE], capture_output=True, text=True, check=False).stdout
    props = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    return [IMAGE] if key and props.get(key) == want else []


def mount_cb(device, callback, data=None, *args, **kwargs):
    tmp = tempfile.mkdtemp()
    try:
        subprocess.run(["xorriso", "-osirrox", "on", "-indev", device, "-extract", "/", tmp + "/m"], check=True, capture_output=True)
        return callback(tmp + "/m", data)
    finally:
        subprocess.run(["chmod", "-R", "u+w", tmp], check=False)
        shutil.rmtree(tmp)


util.find_devs_with = find_devs_with
util.mount_cb = mount_cb

state = tempfile.mkdtemp()
try:
    paths = helpers.Paths({"cloud_dir": state, "run_dir": state})
    distro = distros.fetch("debian")("debian", {}, paths)
    ds = DataSourceNoCloud.DataSourceNoCloud(settings.CFG_BUILTIN, distro, paths)
    found = bool(ds._get_data())
    result = {"found": found}
    if found:
        ud = ds.userdata_raw
        result.update(
            {
                "instance_id": ds.get_instance_id(),
                "hostname": ds.get_hostname().hostname,
                "public_keys": ds.get_public_ssh_keys(),
                "userdata_raw": ud.decode() if isinstance(ud, bytes) else ud,
                "network_config": ds.network_config,
                "metadata": ds.metadata,
            }
        )
    print(json.dumps(result, default=str))
finally:
    shutil.rmtree(state)
