/* The lvm_thin driver's one-time set-up. */
#pragma once

/* Initialises libblockdev with only its LVM plugin (dependency checks off).
 * Call once from main() before any thread starts; idempotent. 0 on success,
 * -1 if the plugin cannot be loaded (lvm_thin pools then fail to open). */
int lvm_thin_init(void);
