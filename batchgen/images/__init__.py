"""Images: what a provider hands back (``ImageData``) and how it reaches the disk
(``save``: atomic files named by job, format sniffing, a pixel bound)."""

from batchgen.images.save import (
    MAX_IMAGE_PIXELS,
    ImageData,
    image_header,
    image_pixels,
    save_images,
    sniff_ext,
)

__all__ = [
    "MAX_IMAGE_PIXELS",
    "ImageData",
    "image_header",
    "image_pixels",
    "save_images",
    "sniff_ext",
]
