"""Checks shared by the hostile-input battery (tests/*/test_hostile.py): a refused command exits
non-zero with exactly one line `error: ...`, prints no traceback, changes no existing file and
leaves no file behind."""
import hashlib
import os


def tree(root):
    """{relative path: (sha256, mtime_ns)} of every file under `root` (directories as None)."""
    found = {}
    for directory, subdirs, files in os.walk(root):
        for name in subdirs:
            found[os.path.relpath(os.path.join(directory, name), root)] = None
        for name in files:
            path = os.path.join(directory, name)
            with open(path, "rb") as f:
                digest = hashlib.sha256(f.read()).hexdigest()
            found[os.path.relpath(path, root)] = (digest, os.stat(path).st_mtime_ns)
    return found


def assert_one_line_error(status, err, named=None, out=""):
    """Exit status non-zero, stderr exactly one `error: ...` line (containing `named`), no traceback."""
    assert status != 0, err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err + out
    if named is not None:
        assert named in err, err
