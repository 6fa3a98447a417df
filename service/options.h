/* Reading a{sv} dictionaries (options, CreateVolume config) against a table
 * of known keys: unknown keys and wrong types are InvalidArgument. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-bus.h>

typedef enum FieldType {
        FIELD_BOOL,    /* b -> bool */
        FIELD_STRING,  /* s -> char* (malloc'd) */
        FIELD_SIZE,    /* t, u, or a decimal string -> uint64_t */
        FIELD_INT,     /* i, u, or a decimal string -> int (>= 0) */
} FieldType;

typedef struct Field {
        const char *key;
        FieldType type;
        void *dest;
        bool seen;
} Field;

/* what: "option" or "config key"; object: what the call is about ("pool
 * p", "volume p:vid"); both for messages. */
int read_dict(sd_bus_message *m, Field *fields, size_t n_fields, const char *what, const char *object,
              sd_bus_error *err);

typedef struct Options {
        bool no_user_interaction;
        bool allow_shrink;
} Options;

/* Reads the trailing options of a method; allow_shrink is accepted only
 * when with_shrink is true. */
int read_options(sd_bus_message *m, Options *o, bool with_shrink, const char *object, sd_bus_error *err);
