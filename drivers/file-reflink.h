/* file-reflink: what the rest of the service needs to know. */
#pragma once

/* 0 when FICLONE works between two files in dir, else -errno. Does I/O. */
int reflink_probe(const char *dir);
