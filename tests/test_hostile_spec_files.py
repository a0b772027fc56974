"""Spec paths that are not a regular file (a FIFO would block, /dev/zero never ends, a directory) are refused
from stat before opening, one SpecError naming the path and what it is; a spec file is read only up to
MAX_SPEC_BYTES."""

import os
import threading

import pytest

import vitstem
from vitstem.spec import load_spec
from vitstem.spec.loading import MAX_SPEC_BYTES


def _unblock_after(fifo, seconds: float) -> threading.Timer:
    """A timer opening `fifo` for writing and closing it: a reader blocked on it (the bug) then sees EOF, so the
    test fails on the message instead of hanging."""
    def unblock():
        try:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:  # no reader: nothing is blocked
            pass
    timer = threading.Timer(seconds, unblock)
    timer.start()
    return timer


def test_paths_that_are_not_regular_files_are_refused_unread(tmp_path):
    fifo = tmp_path / "spec.yaml"
    os.mkfifo(fifo)
    timer = _unblock_after(fifo, 10)
    try:
        messages = []
        for path in (fifo, "/dev/zero", tmp_path):  # /dev/zero read past the cap would be over the limit
            with pytest.raises(vitstem.SpecError) as info:
                load_spec(path)
            messages.append(str(info.value))
    finally:
        timer.cancel()
    assert messages == [f"spec file {fifo} is a FIFO, not a regular file",
                        "spec file /dev/zero is a character device, not a regular file",
                        f"spec file {tmp_path} is a directory, not a regular file"]


def test_a_spec_file_over_the_size_limit_is_refused(tmp_path):
    head = '{"spec_version": 1, "image_size": 16, "patch_size": 4, "embed_dim": 8}'
    path = tmp_path / "spec.json"
    path.write_text(head + " " * (MAX_SPEC_BYTES - len(head)))  # exactly at the limit: still a spec
    assert load_spec(path).embed_dim == 8
    with open(path, "a") as f:
        f.write(" ")
    with pytest.raises(vitstem.SpecError) as info:
        load_spec(path)
    assert str(info.value) == f"spec file {path} is over the {MAX_SPEC_BYTES}-byte limit"
