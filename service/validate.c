#include "validate.h"

#include <string.h>

static bool in_set(char c, const char *extra) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               (c != '\0' && strchr(extra, c));
}

static bool all_in_set(const char *s, const char *extra) {
        for (; *s; s++)
                if (!in_set(*s, extra))
                        return false;
        return true;
}

bool valid_pool_name(const char *s) {
        size_t n = s ? strlen(s) : 0;
        return n >= 1 && n <= 64 && s[0] != '-' && s[0] != '.' && all_in_set(s, "_.-");
}

bool valid_vid(const char *s) {
        size_t n = s ? strlen(s) : 0;
        if (n < 1 || n > 255 || s[0] == '/' || s[n - 1] == '/' || !all_in_set(s, "_.-/"))
                return false;
        /* no empty, "." or ".." component */
        for (const char *c = s; c;) {
                const char *slash = strchr(c, '/');
                size_t len = slash ? (size_t) (slash - c) : strlen(c);
                if (len == 0 || (len == 1 && c[0] == '.') || (len == 2 && c[0] == '.' && c[1] == '.'))
                        return false;
                c = slash ? slash + 1 : NULL;
        }
        return true;
}

bool valid_vm_name(const char *s) {
        size_t n = s ? strlen(s) : 0;
        return n >= 1 && n <= 31 && ((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z')) &&
               all_in_set(s, "_.-");
}

bool valid_size(uint64_t size) {
        return size > 0 && size <= SIZE_MAX_ALLOWED;
}
