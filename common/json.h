/*
 * json - a small reader for the JSON this project writes itself (etrn-queue
 * status --json, the agent's status file).
 *
 * json_parse() reads one value from text into v (objects keep their member
 * names in keys[], arrays and objects their values in items[]); nesting is
 * limited to JSON_DEPTH_MAX; trailing blanks are allowed, anything else after
 * the value is an error. \u escapes outside printable ASCII become '?'.
 * Returns 0, or -1 (v is still safe to json_free). v owns every string:
 * json_free() releases them. json_get() finds an object member (NULL when
 * absent or not an object); json_num() and json_str() read a member of that
 * type or return def.
 */
#ifndef ETRNKIT_JSON_H
#define ETRNKIT_JSON_H

#include <stddef.h>

#define JSON_DEPTH_MAX 32

enum json_type { JSON_NULL, JSON_BOOL, JSON_NUM, JSON_STR, JSON_ARR, JSON_OBJ };

struct json_val {
    enum json_type type;
    double num;                 /* JSON_NUM, JSON_BOOL (0/1) */
    char *str;                  /* JSON_STR */
    struct json_val *items;     /* JSON_ARR, JSON_OBJ values */
    char **keys;                /* JSON_OBJ member names */
    size_t n;
};

int json_parse(const char *text, struct json_val *v);
void json_free(struct json_val *v);
const struct json_val *json_get(const struct json_val *obj, const char *key);
long long json_num(const struct json_val *obj, const char *key, long long def);
const char *json_str(const struct json_val *obj, const char *key, const char *def);

#endif
