"""File formats and encodings that datasets read: IDX, byte images, memory-mapped arrays, checked
download files, table columns."""
