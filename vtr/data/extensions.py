"""The file extensions vtr reads as media: what the index scans, what a search takes as an example, what `vtr shards
make` packs. No imports: the scan and the command line read them without loading torch."""

#: Video files: the containers FFmpeg (PyAV) opens; also camcorders' (.mts, .mod, .dv), DVDs' (.vob), broadcast
#: (.mxf), old web and Windows video (.asf, .f4v, .divx, .rm, .rmvb), and raw streams without a container: H.264 and
#: HEVC (a Raspberry Pi camera's .h264, CCTV recorders' .264 and .h265: :data:`vtr.data.video.RAW_FORMATS`), MJPEG
#: (the Pi's ``--codec mjpeg``, an IP camera's stream saved), VP8/VP9/AV1 in IVF (.ivf: libvpx's and aomenc's, a
#: WebRTC call recorded), MPEG-1 video (.m1v); a Dahua recorder's export (.dav: CCTV's NVRs and DVRs); Windows Media
#: Center's TV recordings (.wtv, .dvr-ms), HD PVRs' MPEG-TS (.trp, .tp), old QuickTime (.qt) and OGM video (.ogm).
#: Audio-first extensions (.ogg, .m4a) are left out: a music folder would fill the failed list.
VIDEO_EXTENSIONS = frozenset({
    ".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".wmv", ".flv", ".mpg", ".mpeg", ".ts", ".mts", ".m2ts",
    ".3gp", ".ogv", ".mxf", ".vob", ".mod", ".dv", ".m2v", ".asf", ".f4v", ".divx", ".rm", ".rmvb", ".y4m",
    ".tod", ".m2t", ".3g2",  # JVC's HD camcorders (MPEG-TS), HDV captured from tape, CDMA phones' 3GPP2
    ".h264", ".264", ".h265", ".265", ".hevc", ".mjpeg", ".mjpg", ".ivf", ".m1v", ".dav",
    ".wtv", ".dvr-ms", ".trp", ".tp", ".qt", ".ogm",
})

#: Photos: what :func:`vtr.data.image.read_image` reads (HEIC grids, EXIF orientation, HDR AVIF).
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".apng", ".bmp", ".webp", ".gif", ".tif", ".tiff", ".avif",
                              ".heic", ".heif"})

#: Pictures that are a video when they hold more than one frame (:func:`vtr.data.animation.is_animation`: a GIF, an
#: APNG, also one named ``.png`` as most are, an animated WebP, an AVIF image sequence), a photo when not: the index
#: scans them with the videos and leaves out the stills.
ANIMATION_EXTENSIONS = frozenset({".gif", ".apng", ".png", ".webp", ".avif"})

#: Photos that may carry a video (a phone's motion photo: :mod:`vtr.data.motion_photo`): the index scans them with the
#: videos, indexes that video and leaves out the photos without one.
MOTION_PHOTO_EXTENSIONS = frozenset({".jpg", ".jpeg", ".heic", ".heif", ".avif"})
