/*
 * openapi_check: keeps gateway/openapi.json true. Three commands:
 *   lint DOC                    the document's structure: OpenAPI 3.1.x, every
 *                               $ref resolves, every operation has an
 *                               operationId, responses and a security
 *                               requirement naming a defined scheme, every
 *                               path template parameter is declared
 *   routes DOC ROUTES.json      the gateway's route table (privid-gateway
 *                               --routes) and the document list the same
 *                               method+path pairs with the same scopes
 *   response DOC METHOD PATH STATUS CONTENT-TYPE BODY
 *                               a real answer: the status is documented for
 *                               the operation PATH matches, with that media
 *                               type, and a JSON BODY (a file) validates
 *                               against its schema
 *   schema DOC POINTER BODY     BODY validates against the schema at POINTER
 * The validator covers the JSON Schema subset the document uses: type (one or
 * a list), const, enum, properties, required, additionalProperties,
 * maxProperties, items, minItems, maxItems, minimum, maximum, minLength,
 * maxLength, pattern (POSIX ERE), oneOf, anyOf, allOf, $ref; format,
 * description and the like are annotations. Exit 0 when all holds, 1 with
 * every problem printed otherwise, 2 on a usage error.
 */
#include <jansson.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int problems;

static void problem(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void problem(const char *fmt, ...)
{
    va_list ap;
    fputs("openapi_check: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    problems++;
}

static json_t *load(const char *path)
{
    json_error_t e;
    json_t *j = json_load_file(path, JSON_REJECT_DUPLICATES, &e);
    if (j == NULL)
        problem("%s: not valid JSON: %s (line %d, column %d)", path, e.text, e.line, e.column);
    return j;
}

/* Resolves a local reference "#/a/b~1c" in doc; NULL when it does not. */
static json_t *resolve(json_t *doc, const char *ref)
{
    if (ref == NULL || strncmp(ref, "#", 1) != 0)
        return NULL;
    json_t *cur = doc;
    const char *p = ref + 1;
    while (cur != NULL && *p == '/') {
        char tok[256];
        size_t n = 0;
        for (p++; *p != '\0' && *p != '/' && n + 1 < sizeof(tok); p++) {
            if (p[0] == '~' && p[1] == '1')
                tok[n++] = '/', p++;
            else if (p[0] == '~' && p[1] == '0')
                tok[n++] = '~', p++;
            else
                tok[n++] = *p;
        }
        tok[n] = '\0';
        cur = json_is_array(cur) ? json_array_get(cur, strtoul(tok, NULL, 10)) : json_object_get(cur, tok);
    }
    return *p == '\0' ? cur : NULL;
}

/* Follows $ref chains (at most 16). */
static json_t *deref(json_t *doc, json_t *node)
{
    for (int i = 0; i < 16 && json_is_object(node) && json_object_get(node, "$ref") != NULL; i++)
        node = resolve(doc, json_string_value(json_object_get(node, "$ref")));
    return node;
}

/* ---- the schema validator ----------------------------------------------- */

static int type_is(const json_t *v, const char *t)
{
    if (strcmp(t, "object") == 0)
        return json_is_object(v);
    if (strcmp(t, "array") == 0)
        return json_is_array(v);
    if (strcmp(t, "string") == 0)
        return json_is_string(v);
    if (strcmp(t, "integer") == 0)
        return json_is_integer(v);
    if (strcmp(t, "number") == 0)
        return json_is_number(v);
    if (strcmp(t, "boolean") == 0)
        return json_is_boolean(v);
    if (strcmp(t, "null") == 0)
        return json_is_null(v);
    return 0;
}

/* UTF-8 code points, as JSON Schema counts string length. */
static size_t utf8_len(const char *s)
{
    size_t n = 0;
    for (; *s != '\0'; s++)
        n += ((unsigned char)*s & 0xc0) != 0x80;
    return n;
}

/* Validates v against schema s; err (size 512) gets the first failure with its JSON path. */
static int valid(json_t *doc, json_t *s, json_t *v, const char *at, char *err)
{
    json_t *k;
    char sub[512];
    if (json_is_true(s))
        return 1;
    if ((s = deref(doc, s)) == NULL || !json_is_object(s)) {
        snprintf(err, 512, "%s: schema reference does not resolve", at);
        return 0;
    }
    if ((k = json_object_get(s, "type")) != NULL) {
        int ok = 0;
        if (json_is_string(k))
            ok = type_is(v, json_string_value(k));
        for (size_t i = 0; json_is_array(k) && i < json_array_size(k) && !ok; i++)
            ok = type_is(v, json_string_value(json_array_get(k, i)));
        if (!ok) {
            char *t = json_dumps(k, JSON_COMPACT | JSON_ENCODE_ANY);
            snprintf(err, 512, "%s: expected type %s", at, t ? t : "?");
            free(t);
            return 0;
        }
    }
    if ((k = json_object_get(s, "const")) != NULL && !json_equal(k, v)) {
        snprintf(err, 512, "%s: expected the constant value", at);
        return 0;
    }
    if ((k = json_object_get(s, "enum")) != NULL) {
        int ok = 0;
        for (size_t i = 0; i < json_array_size(k) && !ok; i++)
            ok = json_equal(json_array_get(k, i), v);
        if (!ok) {
            char *t = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
            snprintf(err, 512, "%s: %.200s is not one of the enum values", at, t ? t : "?");
            free(t);
            return 0;
        }
    }
    if (json_is_number(v)) {
        double x = json_number_value(v);
        if ((k = json_object_get(s, "minimum")) != NULL && x < json_number_value(k)) {
            snprintf(err, 512, "%s: %g below the minimum %g", at, x, json_number_value(k));
            return 0;
        }
        if ((k = json_object_get(s, "maximum")) != NULL && x > json_number_value(k)) {
            snprintf(err, 512, "%s: %g above the maximum %g", at, x, json_number_value(k));
            return 0;
        }
    }
    if (json_is_string(v)) {
        size_t n = utf8_len(json_string_value(v));
        if ((k = json_object_get(s, "minLength")) != NULL && n < (size_t)json_integer_value(k)) {
            snprintf(err, 512, "%s: shorter than %lld", at, (long long)json_integer_value(k));
            return 0;
        }
        if ((k = json_object_get(s, "maxLength")) != NULL && n > (size_t)json_integer_value(k)) {
            snprintf(err, 512, "%s: longer than %lld", at, (long long)json_integer_value(k));
            return 0;
        }
        if ((k = json_object_get(s, "pattern")) != NULL) {
            regex_t re;
            if (regcomp(&re, json_string_value(k), REG_EXTENDED | REG_NOSUB) != 0) {
                snprintf(err, 512, "%s: the pattern %s does not compile", at, json_string_value(k));
                return 0;
            }
            int m = regexec(&re, json_string_value(v), 0, NULL, 0);
            regfree(&re);
            if (m != 0) {
                snprintf(err, 512, "%s: \"%.100s\" does not match %s", at, json_string_value(v),
                         json_string_value(k));
                return 0;
            }
        }
    }
    if (json_is_array(v)) {
        size_t n = json_array_size(v);
        if ((k = json_object_get(s, "minItems")) != NULL && n < (size_t)json_integer_value(k)) {
            snprintf(err, 512, "%s: fewer than %lld items", at, (long long)json_integer_value(k));
            return 0;
        }
        if ((k = json_object_get(s, "maxItems")) != NULL && n > (size_t)json_integer_value(k)) {
            snprintf(err, 512, "%s: more than %lld items", at, (long long)json_integer_value(k));
            return 0;
        }
        if ((k = json_object_get(s, "items")) != NULL)
            for (size_t i = 0; i < n; i++) {
                snprintf(sub, sizeof(sub), "%.480s[%zu]", at, i);
                if (!valid(doc, k, json_array_get(v, i), sub, err))
                    return 0;
            }
    }
    if (json_is_object(v)) {
        json_t *props = json_object_get(s, "properties"), *req = json_object_get(s, "required"), *x;
        json_t *add = json_object_get(s, "additionalProperties");
        const char *name;
        for (size_t i = 0; i < json_array_size(req); i++)
            if (json_object_get(v, json_string_value(json_array_get(req, i))) == NULL) {
                snprintf(err, 512, "%s: missing required member \"%s\"", at,
                         json_string_value(json_array_get(req, i)));
                return 0;
            }
        if ((k = json_object_get(s, "maxProperties")) != NULL &&
            json_object_size(v) > (size_t)json_integer_value(k)) {
            snprintf(err, 512, "%s: more than %lld members", at, (long long)json_integer_value(k));
            return 0;
        }
        json_object_foreach(v, name, x)
        {
            json_t *ps = json_object_get(props, name);
            snprintf(sub, sizeof(sub), "%.400s.%.100s", at, name);
            if (ps == NULL && json_is_false(add)) {
                snprintf(err, 512, "%.400s: member not in the schema", sub);
                return 0;
            }
            if (ps == NULL && json_is_object(add) && !valid(doc, add, x, sub, err))
                return 0;
            if (ps != NULL && !valid(doc, ps, x, sub, err))
                return 0;
        }
    }
    if ((k = json_object_get(s, "allOf")) != NULL)
        for (size_t i = 0; i < json_array_size(k); i++)
            if (!valid(doc, json_array_get(k, i), v, at, err))
                return 0;
    if ((k = json_object_get(s, "anyOf")) != NULL || (k = json_object_get(s, "oneOf")) != NULL) {
        const int one = json_object_get(s, "oneOf") != NULL;
        int matched = 0;
        char first[512] = "";
        for (size_t i = 0; i < json_array_size(k); i++) {
            char e2[512];
            if (valid(doc, json_array_get(k, i), v, at, e2))
                matched++;
            else if (first[0] == '\0')
                memcpy(first, e2, sizeof(first));
        }
        if (matched == 0 || (one && matched > 1)) {
            snprintf(err, 512, "%.250s: %s (%.200s)", at,
                     matched ? "matches more than one of oneOf" : "matches none of oneOf/anyOf", first);
            return 0;
        }
    }
    return 1;
}

/* ---- lint ---------------------------------------------------------------- */

static const char *const methods[] = {"get", "put", "post", "delete", "patch", "head", "options", "trace"};
#define NMETHODS (sizeof(methods) / sizeof(methods[0]))

static void check_refs(json_t *doc, json_t *node, const char *where)
{
    const char *k;
    json_t *v;
    size_t i;
    if (json_is_object(node)) {
        json_t *ref = json_object_get(node, "$ref");
        if (ref != NULL && (!json_is_string(ref) || resolve(doc, json_string_value(ref)) == NULL))
            problem("%s: $ref %s does not resolve", where,
                    json_is_string(ref) ? json_string_value(ref) : "(not a string)");
        json_object_foreach(node, k, v) check_refs(doc, v, where);
    } else if (json_is_array(node)) {
        json_array_foreach(node, i, v) check_refs(doc, v, where);
    }
}

/* Whether the operation (or its path item) declares path parameter name. */
static int declares_path_param(json_t *doc, json_t *item, json_t *op, const char *name)
{
    json_t *lists[2] = {json_object_get(item, "parameters"), json_object_get(op, "parameters")};
    for (int l = 0; l < 2; l++)
        for (size_t i = 0; i < json_array_size(lists[l]); i++) {
            json_t *p = deref(doc, json_array_get(lists[l], i));
            if (json_is_string(json_object_get(p, "in")) &&
                strcmp(json_string_value(json_object_get(p, "in")), "path") == 0 &&
                json_is_string(json_object_get(p, "name")) &&
                strcmp(json_string_value(json_object_get(p, "name")), name) == 0 &&
                json_is_true(json_object_get(p, "required")))
                return 1;
        }
    return 0;
}

static void lint(json_t *doc)
{
    const char *ver = json_string_value(json_object_get(doc, "openapi"));
    if (ver == NULL || strncmp(ver, "3.1.", 4) != 0)
        problem("openapi: expected 3.1.x, got %s", ver ? ver : "nothing");
    json_t *info = json_object_get(doc, "info");
    if (!json_is_string(json_object_get(info, "title")) || !json_is_string(json_object_get(info, "version")))
        problem("info: title and version are required strings");
    check_refs(doc, doc, "document");
    json_t *schemes = json_object_get(json_object_get(doc, "components"), "securitySchemes");
    json_t *paths = json_object_get(doc, "paths"), *item, *ids = json_object();
    const char *path;
    if (json_object_size(paths) == 0)
        problem("paths: none");
    json_object_foreach(paths, path, item)
    {
        int nops = 0;
        if (path[0] != '/')
            problem("%s: a path starts with /", path);
        for (size_t m = 0; m < NMETHODS; m++) {
            json_t *op = json_object_get(item, methods[m]), *sec, *resp, *r;
            const char *status;
            if (op == NULL)
                continue;
            nops++;
            const char *id = json_string_value(json_object_get(op, "operationId"));
            if (id == NULL)
                problem("%s %s: no operationId", methods[m], path);
            else if (json_object_get(ids, id) != NULL)
                problem("%s %s: operationId %s used twice", methods[m], path, id);
            else
                json_object_set_new(ids, id, json_true());
            if (!json_is_array(sec = json_object_get(op, "security")))
                problem("%s %s: no security requirement (use [] for a public route)", methods[m], path);
            for (size_t i = 0; i < json_array_size(sec); i++) {
                const char *scheme;
                json_t *scopes;
                json_object_foreach(json_array_get(sec, i), scheme, scopes)
                {
                    if (json_object_get(schemes, scheme) == NULL)
                        problem("%s %s: security scheme %s is not defined", methods[m], path, scheme);
                    if (!json_is_array(scopes))
                        problem("%s %s: the scopes of %s are not a list", methods[m], path, scheme);
                }
            }
            if (json_object_size(resp = json_object_get(op, "responses")) == 0)
                problem("%s %s: no responses", methods[m], path);
            json_object_foreach(resp, status, r)
            {
                if (strlen(status) != 3 || status[0] < '1' || status[0] > '5')
                    problem("%s %s: response key %s is not a status", methods[m], path, status);
                if (!json_is_string(json_object_get(deref(doc, r), "description")))
                    problem("%s %s: response %s has no description", methods[m], path, status);
            }
            /* every {name} of the template is a required path parameter */
            for (const char *p = strchr(path, '{'); p != NULL; p = strchr(p + 1, '{')) {
                char name[64];
                const char *e = strchr(p, '}');
                if (e == NULL || e - p - 1 <= 0 || (size_t)(e - p - 1) >= sizeof(name)) {
                    problem("%s: malformed template", path);
                    break;
                }
                memcpy(name, p + 1, (size_t)(e - p - 1));
                name[e - p - 1] = '\0';
                if (!declares_path_param(doc, item, op, name))
                    problem("%s %s: path parameter %s is not declared (in: path, required: true)", methods[m],
                            path, name);
            }
        }
        if (nops == 0)
            problem("%s: no operation", path);
    }
    json_decref(ids);
}

/* ---- routes ---------------------------------------------------------------- */

/* "recognize" or "" (any key) or NULL (public) of an operation's security. */
static const char *op_scope(json_t *op, int *ok)
{
    json_t *sec = json_object_get(op, "security");
    *ok = 1;
    if (json_array_size(sec) == 0)
        return NULL;
    json_t *req = json_array_get(sec, 0);
    json_t *scopes = json_object_get(req, "bearerAuth");
    if (json_array_size(sec) != 1 || json_object_size(req) != 1 || scopes == NULL ||
        json_array_size(scopes) > 1) {
        *ok = 0;
        return NULL;
    }
    return json_array_size(scopes) == 0 ? "" : json_string_value(json_array_get(scopes, 0));
}

static void lower(char *dst, const char *src, size_t size)
{
    size_t i = 0;
    for (; src[i] != '\0' && i + 1 < size; i++)
        dst[i] = (char)(src[i] >= 'A' && src[i] <= 'Z' ? src[i] + 32 : src[i]);
    dst[i] = '\0';
}

static void routes(json_t *doc, json_t *table)
{
    json_t *paths = json_object_get(doc, "paths"), *seen = json_object(), *r, *item;
    size_t i;
    const char *path;
    if (!json_is_array(table) || json_array_size(table) == 0)
        problem("the route table is not a non-empty JSON array");
    json_array_foreach(table, i, r)
    {
        const char *method = json_string_value(json_object_get(r, "method"));
        const char *p = json_string_value(json_object_get(r, "path"));
        const char *scope = json_string_value(json_object_get(r, "scope"));
        int auth = json_is_true(json_object_get(r, "auth")), ok;
        char m[16], key[300];
        if (method == NULL || p == NULL) {
            problem("route %zu: no method or path", i);
            continue;
        }
        lower(m, method, sizeof(m));
        snprintf(key, sizeof(key), "%s %s", m, p);
        json_object_set_new(seen, key, json_true());
        json_t *op = json_object_get(json_object_get(paths, p), m);
        if (op == NULL) {
            problem("served but not documented: %s %s", method, p);
            continue;
        }
        const char *doc_scope = op_scope(op, &ok);
        if (!ok)
            problem("%s %s: security must be [] or one bearerAuth requirement with at most one scope", method,
                    p);
        else if (!auth && doc_scope != NULL)
            problem("%s %s: public in the gateway, documented as needing a key", method, p);
        else if (auth && doc_scope == NULL)
            problem("%s %s: needs a key in the gateway, documented as public", method, p);
        else if (auth && strcmp(doc_scope, scope ? scope : "") != 0)
            problem("%s %s: scope %s in the gateway, %s in the document", method, p,
                    scope ? scope : "(any key)", doc_scope[0] ? doc_scope : "(any key)");
    }
    json_object_foreach(paths, path, item)
    {
        for (size_t mi = 0; mi < NMETHODS; mi++) {
            char key[300];
            if (json_object_get(item, methods[mi]) == NULL)
                continue;
            snprintf(key, sizeof(key), "%s %s", methods[mi], path);
            if (json_object_get(seen, key) == NULL)
                problem("documented but not served: %s %s", methods[mi], path);
        }
    }
    json_decref(seen);
}

/* ---- response -------------------------------------------------------------- */

/* Whether a concrete path matches a template ({x} is one non-empty segment). */
static int path_matches(const char *tmpl, const char *path)
{
    while (*tmpl != '\0' && *path != '\0') {
        if (*tmpl == '{') {
            const char *e = strchr(tmpl, '}');
            if (e == NULL || *path == '/')
                return 0;
            while (*path != '\0' && *path != '/')
                path++;
            tmpl = e + 1;
        } else if (*tmpl++ != *path++) {
            return 0;
        }
    }
    return *tmpl == '\0' && *path == '\0';
}

static json_t *find_op(json_t *doc, const char *method, const char *path)
{
    json_t *paths = json_object_get(doc, "paths"), *item, *found = NULL;
    const char *tmpl;
    char m[16];
    char clean[1024];
    snprintf(clean, sizeof(clean), "%s", path);
    clean[strcspn(clean, "?")] = '\0';
    lower(m, method, sizeof(m));
    if ((item = json_object_get(paths, clean)) != NULL)
        return json_object_get(item, m);
    json_object_foreach(paths, tmpl, item)
    {
        if (strchr(tmpl, '{') != NULL && path_matches(tmpl, clean))
            found = json_object_get(item, m);
    }
    return found;
}

static int check_body(json_t *doc, json_t *schema, const char *body_file, const char *what)
{
    json_error_t e;
    json_t *body = json_load_file(body_file, JSON_DECODE_ANY, &e);
    char err[512];
    if (body == NULL) {
        problem("%s: the body is not JSON: %s", what, e.text);
        return 1;
    }
    if (!valid(doc, schema, body, "$", err))
        problem("%s: %s", what, err);
    json_decref(body);
    return 0;
}

static void response(json_t *doc, const char *method, const char *path, const char *status, const char *ctype,
                     const char *body_file)
{
    char what[1200], media[128];
    snprintf(what, sizeof(what), "%s %s -> %s", method, path, status);
    json_t *op = find_op(doc, method, path);
    if (op == NULL) {
        problem("%s: no such operation in the document", what);
        return;
    }
    json_t *resp = deref(doc, json_object_get(json_object_get(op, "responses"), status));
    if (resp == NULL) {
        problem("%s: status %s is not documented for this operation", what, status);
        return;
    }
    json_t *content = json_object_get(resp, "content");
    snprintf(media, sizeof(media), "%s", ctype);
    media[strcspn(media, ";")] = '\0';
    lower(media, media, sizeof(media));
    if (json_object_size(content) == 0) {
        if (media[0] != '\0' && strcmp(status, "304") != 0)
            problem("%s: answered %s, the document says no body", what, media);
        return;
    }
    json_t *mt = json_object_get(content, media);
    if (mt == NULL) {
        problem("%s: media type \"%s\" is not documented for this status", what, media);
        return;
    }
    if (strcmp(media, "application/json") == 0)
        check_body(doc, json_object_get(mt, "schema"), body_file, what);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr,
                "usage: openapi_check lint DOC | routes DOC ROUTES.json | response DOC METHOD PATH STATUS "
                "CONTENT-TYPE BODY | schema DOC POINTER BODY\n");
        return 2;
    }
    json_t *doc = load(argv[2]);
    if (doc == NULL)
        return 1;
    if (strcmp(argv[1], "lint") == 0 && argc == 3) {
        lint(doc);
    } else if (strcmp(argv[1], "routes") == 0 && argc == 4) {
        json_t *t = load(argv[3]);
        if (t != NULL)
            routes(doc, t);
        json_decref(t);
    } else if (strcmp(argv[1], "response") == 0 && argc == 8) {
        response(doc, argv[3], argv[4], argv[5], argv[6], argv[7]);
    } else if (strcmp(argv[1], "schema") == 0 && argc == 5) {
        json_t *s = resolve(doc, argv[3]);
        if (s == NULL)
            problem("%s does not resolve", argv[3]);
        else
            check_body(doc, s, argv[4], argv[3]);
    } else {
        fprintf(stderr, "openapi_check: unknown command or wrong arguments (see the usage)\n");
        json_decref(doc);
        return 2;
    }
    json_decref(doc);
    return problems == 0 ? 0 : 1;
}
