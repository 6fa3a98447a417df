/* The few helpers that make ownership visible. */
#pragma once

#include <glib.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

/* g_autoptr for the sd-bus and sd-event types, so that one cleanup
 * vocabulary (glib's g_autoptr, g_autofree, g_steal_pointer) serves all. A
 * g_autoptr(sd_bus) is flushed before it is closed: what was queued is sent. */
G_DEFINE_AUTOPTR_CLEANUP_FUNC(sd_bus_message, sd_bus_message_unref)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(sd_event, sd_event_unref)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(sd_bus, sd_bus_flush_close_unref)

#define USEC_PER_SEC 1000000ULL
#define USEC_PER_MSEC 1000ULL
