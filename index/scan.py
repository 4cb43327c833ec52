"""Finding the videos under a set of folders."""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass

from vtr.data.animation import is_animation
from vtr.data.extensions import ANIMATION_EXTENSIONS, MOTION_PHOTO_EXTENSIONS, VIDEO_EXTENSIONS
from vtr.data.motion_photo import video_at

#: What the scan looks for: videos, the pictures that may be animations and the photos that may carry a video (a
#: GIF of one frame and a photo without a video are left out: :func:`is_still_picture`).
SCANNED_EXTENSIONS = VIDEO_EXTENSIONS | ANIMATION_EXTENSIONS | MOTION_PHOTO_EXTENSIONS
#: Pictures that may hold a video, which the scan reads to know (:func:`is_still_picture`).
PICTURE_EXTENSIONS = ANIMATION_EXTENSIONS | MOTION_PHOTO_EXTENSIONS

#: Which scan read the pictures an index keeps (``Catalog.pictures``): when vtr learns to find a video in pictures
#: it left out before, this number goes up, and an index reads its pictures again (2: animated AVIFs).
PICTURES_VERSION = 2

logger = logging.getLogger(__name__)

#: Folders a file system or a NAS keeps for itself (compared without case), skipped like hidden ones: recycle bins
#: (Windows' $RECYCLE.BIN and RECYCLER, Synology's #recycle, QNAP's @Recycle), snapshots (Synology's #snapshot: a
#: copy of every video), Synology's @eaDir (thumbnails and a small transcode of every video), Windows' System Volume
#: Information, and lost+found. A folder named as a root is scanned all the same.
SYSTEM_FOLDERS = frozenset({"$recycle.bin", "recycler", "#recycle", "@recycle", "#snapshot", "@eadir",
                            "system volume information", "lost+found"})


@dataclass(frozen=True)
class ScannedFile:
    path: str  # absolute (symbolic links are kept as the path they were found at)
    size: int
    mtime: float
    error: str | None = None  # set for entries that can be named but not read (a dangling link)


def unreadable_name(path: str) -> str | None:
    """None for a path that is valid UTF-8 (nearly all); else the path with its undecodable bytes written as
    ``\\xNN``. Python gives such a name (a Latin-1 one from an old archive, say) lone surrogates, which neither the
    catalog nor a page can hold, so the file is listed as failed under that printable name."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return None


#: Extensions that also name text files: ``.ts`` is MPEG-TS (broadcast, camcorders) and TypeScript, thousands of
#: files in any ``node_modules``. Such a file whose start is text is code, not a damaged video.
SHARED_EXTENSIONS = frozenset({".ts"})


def is_source_code(path: str) -> bool:
    """Whether ``path``, named like a video by an extension text files share (:data:`SHARED_EXTENSIONS`), starts
    as text: UTF-8 without NUL bytes. MPEG-TS starts with the sync byte 0x47 and holds binary everywhere; a damaged
    video that is binary is not text, so it is still listed as failed."""
    if os.path.splitext(path)[1].lower() not in SHARED_EXTENSIONS:
        return False
    try:
        with open(path, "rb") as f:
            head = f.read(512)
    except OSError:
        return False  # the build says why it cannot be read
    if not head or b"\0" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as e:
        return e.start >= len(head) - 3 and e.reason == "unexpected end of data"  # a character cut at 512 bytes
    return True


def is_still_picture(path: str, size: int, mtime: float) -> bool:
    """Whether ``path``, named as a picture that may be animated (:data:`ANIMATION_EXTENSIONS`: ``.gif``, ``.apng``,
    ``.png``, ``.webp``, ``.avif``) or a photo that may carry a video (:data:`MOTION_PHOTO_EXTENSIONS`: ``.jpg``,
    ``.heic``, ...), holds a single frame and no video: a picture, left out. An animation (a phone's, or one saved
    from a chat) is indexed as the short video it is, and so is a motion photo's video
    (:mod:`vtr.data.motion_photo`). Remembered by size and modification time: a scan that runs every few minutes
    reads each picture once. Raises ``OSError`` for a file that cannot be read: not known to be a picture, it is
    listed, and the build says why."""
    ext = os.path.splitext(path)[1].lower()
    if ext in MOTION_PHOTO_EXTENSIONS and video_at(path) is not None:  # its XMP and its tail, a few small reads
        return False
    if ext not in ANIMATION_EXTENSIONS:
        return ext in MOTION_PHOTO_EXTENSIONS
    with open(path, "rb"):  # is_animation takes a file it cannot open for a still
        pass
    return _still(path, size, mtime)  # an AVIF is both: a motion photo's, or an image sequence


@functools.lru_cache(maxsize=1 << 16)
def _still(path: str, size: int, mtime: float) -> bool:
    return not is_animation(path)  # reads the file's blocks up to its second frame


def pictures_summary(pictures: dict | None) -> str:
    """An index status's ``pictures`` counts in words: "2200 read: 200 hold a video (motion photos, animations), 2000
    left out" ("" before any picture was read)."""
    if not pictures or not pictures.get("read"):
        return ""
    return (f"{pictures['read']} read: {pictures['with_video']} hold a video (motion photos, animations), "
            f"{pictures['read'] - pictures['with_video']} left out")


def check_roots(roots, extensions=SCANNED_EXTENSIONS) -> None:
    """Each of ``roots`` names a folder, a file or a link here: a typo is said before an index folder is made or a
    model loads (a name longer than the file system takes is no folder either, not an ``OSError``). A file named
    alone must be one the scan takes: a photo, a document or a GIF of one frame was an index of nothing, with no
    word why."""
    from vtr.errors import VtrError

    for root in roots:
        path = os.path.abspath(os.path.expanduser(root))
        if not (os.path.isdir(path) or os.path.isfile(path) or os.path.islink(path)):
            raise VtrError(f"{path} is not a folder or a file")
        if not os.path.isfile(path):
            continue  # a folder, or a dangling link (listed as failed, as in a folder)
        ext = os.path.splitext(path)[1].lower()
        if ext not in {e.lower() for e in extensions}:
            names = ", ".join(sorted(e for e in extensions if e not in PICTURE_EXTENSIONS))
            raise VtrError(f"{path} is not a video file: vtr indexes the extensions {names}, animated "
                           f"{', '.join(sorted(ANIMATION_EXTENSIONS & set(extensions)))} files, and motion photos "
                           f"({', '.join(sorted(MOTION_PHOTO_EXTENSIONS & set(extensions)))} holding a video)")
        if is_source_code(path):
            raise VtrError(f"{path} is text (source code such as TypeScript), not an MPEG-TS video")
        st = os.stat(path)
        try:
            still = is_still_picture(path, st.st_size, st.st_mtime)
        except OSError:
            continue  # taken: the build says why it cannot be read
        if still:
            if ext in MOTION_PHOTO_EXTENSIONS:
                raise VtrError(f"{path} is a photo with no video in it, not a video: vtr indexes a photo when it is "
                               "a motion photo (a Pixel's .MP.jpg, a Galaxy's motion photo)")
            raise VtrError(f"{path} is a still picture (a single frame), not a video: vtr indexes a GIF, PNG, WebP or "
                           "AVIF when it is animated")


def scan_folders(roots: list[str], extensions=SCANNED_EXTENSIONS, exclude=(),
                 unreadable: list | None = None, mounts: list | None = None, known_pictures=None,
                 pictures: list | None = None) -> list[ScannedFile]:
    """Video files under ``roots``, recursively, sorted by path; animated GIFs, APNGs, WebPs and AVIFs, and motion
    photos, too (:func:`is_still_picture`).

    exclude: absolute paths (folders or files) inside the roots to leave out, as ``vtr index remove`` records
    them; a root itself is always scanned, also one inside an excluded folder.
    unreadable: a list that gets ``(folder, reason)`` for each folder that could not be listed (permissions, a
    share's I/O error): its videos are unknown, not gone.
    mounts: a list that gets each folder below a root on which a drive or share is mounted (``/media/me/USB``,
    ``~/Videos/NAS``): once unmounted, its videos are away, not gone.
    known_pictures: ``{path: (size, mtime, holds a video)}`` of pictures an earlier scan read: taken as they were,
    without reading the file, while its size and modification time are the same (a camera folder of thousands of
    photos is read once, not on every update).
    pictures: a list that gets ``(path, size, mtime, holds a video)`` of each picture (:data:`PICTURE_EXTENSIONS`)
    found.

    Hidden files and folders (name starting with ``.``) are skipped, and so are :data:`SYSTEM_FOLDERS` and
    TypeScript files (:func:`is_source_code`). Symbolic links are followed, but each real
    folder is visited once (no loops through links) and each real file is listed once. A link whose target is
    missing is listed with ``error`` set, so the build records it as failed instead of silently ignoring it.
    A folder whose name looks like a video (``x.mp4/``) is scanned as a folder. A root may also be a single file.
    A file whose path is not valid UTF-8 is listed with ``error`` set, under a printable name
    (:func:`unreadable_name`).
    """
    found: dict[str, ScannedFile] = {}
    left_out = {os.path.abspath(e) for e in exclude}
    seen_real_files: set[str] = set()
    seen_real_dirs: set[str] = set()
    exts = {e.lower() for e in extensions}
    known = known_pictures or {}

    def consider(path: str):
        ext = os.path.splitext(path)[1].lower()
        if ext not in exts or path in found:
            return
        shown = unreadable_name(path)
        if shown is not None:
            found[shown] = ScannedFile(shown, 0, 0.0, "its name is not valid UTF-8 (rename it to index it)")
            return
        try:
            st = os.stat(path)
        except FileNotFoundError:
            if os.path.islink(path):
                lst = os.lstat(path)
                found[path] = ScannedFile(path, 0, lst.st_mtime, "dangling symbolic link (its target does not exist)")
            return
        except OSError as e:
            found[path] = ScannedFile(path, 0, 0.0, f"cannot stat: {e.strerror}")
            return
        if not os.path.isfile(path) or is_source_code(path):
            return
        size, mtime = int(st.st_size), float(st.st_mtime)
        if ext in PICTURE_EXTENSIONS:
            before = known.get(path)
            if before is not None and before[:2] == (size, mtime):
                video = before[2]
            else:
                try:
                    video = not is_still_picture(path, size, mtime)
                except OSError:  # listed as a video that cannot be read is: the build says why, and reads it
                    video = None  # again once it can (nothing is kept of it)
            if pictures is not None and video is not None:
                pictures.append((path, size, mtime, video))
            if video is False:
                return
        real = os.path.realpath(path)
        if real in seen_real_files:
            return
        seen_real_files.add(real)
        found[path] = ScannedFile(path, int(st.st_size), float(st.st_mtime))

    for root in roots:
        root = os.path.abspath(os.path.expanduser(root))
        if os.path.isfile(root) or os.path.islink(root) and not os.path.isdir(root):
            consider(root)
            continue
        check_roots([root])

        def said(e: OSError):
            if unreadable is not None:
                unreadable.append((os.path.abspath(e.filename or root), e.strerror or str(e)))

        for dirpath, dirnames, filenames in os.walk(root, onerror=said, followlinks=True):
            real = os.path.realpath(dirpath)
            if real in seen_real_dirs:
                dirnames[:] = []
                continue
            seen_real_dirs.add(real)
            if mounts is not None and dirpath != root and os.path.ismount(dirpath):
                mounts.append(os.path.abspath(dirpath))
            dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d.lower() not in SYSTEM_FOLDERS
                                 and os.path.join(dirpath, d) not in left_out)
            for name in sorted(filenames):
                if not name.startswith(".") and os.path.join(dirpath, name) not in left_out:
                    consider(os.path.join(dirpath, name))
    return sorted(found.values(), key=lambda f: f.path)
