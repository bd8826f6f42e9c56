/*
 * config - typed configuration tables over inih.
 *
 * cfg_parse() reads an INI file with inih and calls a handler for every
 * "key = value" with the section, the line number and whether the line was an
 * indented continuation. inih's line limit (CFG_LINE_MAX) is enforced loudly:
 * a longer line is an error naming the file and line, never cut. Syntax
 * errors and handler errors come back in struct cfg_error as
 * "FILE:LINE: [section] key: what is wrong" (control characters shown as
 * '?'); the first error stops parsing.
 *
 * A struct cfg_key table describes one section's keys: name, type, default
 * (as text), limits and the offset of the field it fills. cfg_section_*
 * apply such a table to a struct: defaults first, then values as they are
 * read (unknown key, bad value, key given twice are errors), then a check
 * for required keys. Field types: CFG_STRING char * (NULL when unset),
 * CFG_INT and CFG_DURATION long long (seconds), CFG_BOOL int, CFG_ENUM int
 * (index into choices), CFG_LIST struct cfg_list (split on blanks and
 * commas; continuation lines append). The struct owns the strings;
 * cfg_section_free() releases them.
 *
 * cfg_map_read() reads a Postfix lookup table file (texthash format) for the
 * map parameters: each "key  value" line goes to a callback with the key and
 * the rest of the line ("" when none); blank lines and '#' comments are
 * skipped; a line that starts with white space (a continuation) or holds a
 * NUL byte is an error. Returns 0, or -1 with why and *line (0: the file could
 * not be opened).
 */
#ifndef ETRNKIT_CONFIG_H
#define ETRNKIT_CONFIG_H

#include <stddef.h>

#define CFG_LINE_MAX 199 /* inih as packaged by Debian reads 200-byte lines */

enum cfg_type { CFG_STRING, CFG_INT, CFG_DURATION, CFG_BOOL, CFG_ENUM, CFG_LIST };

#define CFG_REQUIRED 1u

struct cfg_key {
    const char *name;
    enum cfg_type type;
    const char *def;            /* default as it would be written; NULL: unset */
    long long min, max;         /* CFG_INT, CFG_DURATION (max 0: no limit) */
    const char *const *choices; /* CFG_ENUM: NULL-terminated */
    size_t offset;
    unsigned flags;
};

struct cfg_list {
    char **items;
    size_t count;
};

struct cfg_error {
    char msg[1024];
};

/* one value from the file */
struct cfg_item {
    const char *file;
    const char *section;
    const char *key;
    const char *value;
    int line;
    int continued; /* indented continuation of the previous key */
    int section_line; /* line of the [section] header; 0 before any */
};

typedef int (*cfg_handler)(void *ctx, const struct cfg_item *item, char *why, size_t whylen);

int cfg_parse(const char *path, cfg_handler handler, void *ctx, struct cfg_error *err);

struct cfg_section {
    const char *file;
    const char *name;          /* section name, for messages */
    const struct cfg_key *keys; /* terminated by a { NULL } entry */
    void *obj;
    int *lines;                /* where each key was set; 0 = default */
};

void cfg_section_init(struct cfg_section *sec, const char *file, const char *name,
                      const struct cfg_key *keys, void *obj);
int cfg_section_set(struct cfg_section *sec, const struct cfg_item *item, char *why, size_t whylen);
int cfg_section_check(const struct cfg_section *sec, int section_line, struct cfg_error *err);
int cfg_section_line(const struct cfg_section *sec, const char *key);
void cfg_section_done(struct cfg_section *sec);
void cfg_section_free(const struct cfg_key *keys, void *obj);

void cfg_list_split(struct cfg_list *list, const char *text);
void cfg_list_add(struct cfg_list *list, const char *item);
void cfg_list_free(struct cfg_list *list);
int cfg_parse_bool(const char *text, int *value);

/* one line of a lookup table file; key and value may be changed in place */
typedef int (*cfg_map_fn)(void *ctx, int line, char *key, char *value, char *why, size_t whylen);

int cfg_map_read(const char *path, cfg_map_fn fn, void *ctx, int *line, char *why, size_t whylen);
void cfg_error_set(struct cfg_error *err, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
