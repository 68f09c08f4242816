"""The manifest: one JSON file that names every file of the current collection version.

Writing a version: data files are written under fresh names and synced, then the manifest is written
to a temporary file, synced, and renamed over ``manifest.json`` (atomic on POSIX), then the directory
is synced. Files no manifest names (left by an older version or a crashed write) are removed after.
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Any

from ..errors import CorruptCollectionError, NotACollectionError
from .files import fsync_dir, write_bytes_durable

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
FORMAT = "vecdb-collection"
FORMAT_VERSION = 1
# Files vecdb writes carry a version number; anything else in the directory is never touched.
_OWNED = re.compile(r"^(seg|deleted|index)-\d{6}.*$|^manifest\.json\.tmp-\d+$")


def read_manifest(root: Path) -> dict[str, Any]:
    path = root / MANIFEST
    if not root.is_dir():
        raise NotACollectionError(f"{str(root)!r} is not a vecdb collection (no such directory)")
    if not path.is_file():
        raise NotACollectionError(f"{str(root)!r} is not a vecdb collection (no {MANIFEST})")
    try:
        manifest = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptCollectionError(f"manifest {str(path)!r} is not valid JSON: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise NotACollectionError(f"{str(path)!r} is not a vecdb manifest")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise CorruptCollectionError(
            f"{str(path)!r} has format version {manifest.get('format_version')!r}; "
            f"this vecdb reads version {FORMAT_VERSION}")
    return manifest


def write_manifest(root: Path, manifest: dict[str, Any]) -> None:
    """Atomically make ``manifest`` the current version, then remove files it no longer names."""
    tmp = root / f"{MANIFEST}.tmp-{manifest['version']}"
    if tmp.exists():
        tmp.unlink()
    write_bytes_durable(tmp, json.dumps(manifest, indent=1, sort_keys=True).encode())
    os.replace(tmp, root / MANIFEST)  # the commit point: from here on the new version is the current one
    try:
        fsync_dir(root)
    except OSError as exc:
        log.error("could not sync directory %s after committing version %s: %s",
                  root, manifest["version"], exc)
    collect_garbage(root, manifest)


def referenced_files(manifest: dict[str, Any]) -> set[str]:
    names: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "file" in node and "sha256" in node:
                names.add(node["file"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(manifest)
    return names


def collect_garbage(root: Path, manifest: dict[str, Any]) -> None:
    keep = referenced_files(manifest)
    for path in root.iterdir():
        if _OWNED.match(path.name) and path.name not in keep:
            try:
                path.unlink()
            except OSError as exc:  # a reader on another platform may hold it open; harmless
                log.debug("could not remove %s: %s", path, exc)
