"""The dashboard's assets, served from the package (never a CDN).

``bastion/ui/static`` holds the dashboard's own script, style and icon;
``static/vendor`` what the Makefile's install step copies from the npm packages pinned by
``bastion/ui/frontend/package-lock.json`` (uPlot). Files are read once, kept with their
gzip form and an ETag; only files found under the folder are served (no path from the
request reaches the file system).
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent / "static"
_TYPES = {".js": b"text/javascript; charset=utf-8", ".css": b"text/css; charset=utf-8",
          ".svg": b"image/svg+xml", ".png": b"image/png", ".json": b"application/json",
          ".map": b"application/json"}


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    gzipped: bytes | None
    etag: bytes
    content_type: bytes


class Assets:
    def __init__(self, root: Path = ROOT) -> None:
        self.root = root
        self._files: dict[str, Asset] | None = None
        self._version: str | None = None

    def files(self) -> dict[str, Asset]:
        if self._files is None:
            found: dict[str, Asset] = {}
            if self.root.is_dir():
                for path in sorted(self.root.rglob("*")):
                    kind = _TYPES.get(path.suffix)
                    if kind is None or not path.is_file():
                        continue
                    body = path.read_bytes()
                    packed = gzip.compress(body, 9, mtime=0) if len(body) > 512 else None
                    etag = b'"%s"' % hashlib.sha256(body).hexdigest()[:20].encode()
                    name = path.relative_to(self.root).as_posix()
                    found[name] = Asset(body, packed, etag, kind)
            self._files = found
        return self._files

    def get(self, name: str) -> Asset | None:
        return self.files().get(name)

    def version(self) -> str:
        """A short hash of every asset: the pages' ``?v=`` so a new release is fetched
        (computed once, like the files it hashes)."""
        if self._version is None:
            digest = hashlib.sha256()
            for name, asset in sorted(self.files().items()):
                digest.update(name.encode() + asset.etag)
            self._version = digest.hexdigest()[:12]
        return self._version

    def missing_vendor(self) -> list[str]:
        """The npm-built files the pages load that are not here (make install builds them)."""
        return [n for n in ("vendor/uPlot.iife.min.js", "vendor/uPlot.min.css")
                if n not in self.files()]
