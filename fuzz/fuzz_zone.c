
/*
 * omnibus_zone's parameters: ngx_omnibus_zone_parse() on a zone from
 * ngx_omnibus_zone_create(), with the input split on spaces into the
 * directive's arguments, each a NUL-terminated token of its own as
 * ngx_conf_read_token() makes them, in cf->args after the directive's
 * name, as ngx_omnibus_zone_directive() passes them.  The ngx_conf_t is
 * the least that ngx_omnibus_conf_error() and ngx_conf_log_error() read:
 * args, a pool, a log, a configuration file name and line; messages are
 * formatted in full by ngx_log_error_core().
 *
 * Properties: a refusal logs exactly one message, which names the
 * directive, the file and the line, and an acceptance logs none; an
 * accepted zone has a name and satisfies 1 <= min_shards <= shards <=
 * max_shards <= 256, LOW < HIGH <= 100 and a size of at least what its
 * shards need.
 */


#include "fuzz_common.h"
#include <ngx_omnibus_core.h>


#define FUZZ_ARGS  64                    /* after the directive's name */


static ngx_conf_file_t  fuzz_conf_file;


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char                *rc;
    u_char              *p, *last, *sp;
    size_t               min;
    ssize_t              zsize;
    ngx_str_t           *value;
    ngx_uint_t           i, n;
    ngx_conf_t           cf;
    ngx_omnibus_zone_t  *zone;
    static u_char        where[] = " in fuzz.conf:7";
    static u_char        name[] = ": omnibus_zone: ";

    fuzz_init();
    fuzz_reset();

    fuzz_conf_file.file.fd = 3;             /* not NGX_INVALID_FILE */
    ngx_str_set(&fuzz_conf_file.file.name, "fuzz.conf");
    fuzz_conf_file.line = 7;

    ngx_memzero(&cf, sizeof(ngx_conf_t));
    cf.name = "omnibus_zone";
    cf.log = &fuzz_log;
    cf.conf_file = &fuzz_conf_file;

    cf.pool = ngx_create_pool(NGX_DEFAULT_POOL_SIZE, &fuzz_log);
    fuzz_assert(cf.pool != NULL);
    cf.temp_pool = cf.pool;

    cf.args = ngx_array_create(cf.pool, FUZZ_ARGS + 1, sizeof(ngx_str_t));
    fuzz_assert(cf.args != NULL);

    value = cf.args->elts;
    ngx_str_set(&value[0], "omnibus_zone");
    value++;

    /* the arguments after the directive's name */

    p = (u_char *) data;
    last = p + size;
    n = 0;

    while (p < last && n < FUZZ_ARGS) {
        if (*p == ' ') {
            p++;
            continue;
        }

        sp = memchr(p, ' ', last - p);
        if (sp == NULL) {
            sp = last;
        }

        value[n].len = sp - p;
        value[n].data = fuzz_dup(p, value[n].len, 1);
        n++;

        p = sp;
    }

    cf.args->nelts = n + 1;

    zone = ngx_omnibus_zone_create(&cf);
    fuzz_assert(zone != NULL);

    rc = ngx_omnibus_zone_parse(&cf, zone, value, n, &zsize);

    if (rc != NGX_CONF_OK) {
        fuzz_assert(rc == NGX_CONF_ERROR);
        fuzz_assert(fuzz_logged == 1);
        fuzz_assert(fuzz_last_len > sizeof(where)
                    && ngx_strlcasestrn(fuzz_last, fuzz_last + fuzz_last_len,
                                        where, sizeof(where) - 2)
                       != NULL);
        fuzz_assert(ngx_strlcasestrn(fuzz_last, fuzz_last + fuzz_last_len,
                                     name, sizeof(name) - 2)
                    != NULL);

    } else {
        fuzz_assert(fuzz_logged == 0);

        fuzz_assert(zone->name.len > 0
                    && ngx_strlchr(zone->name.data,
                                   zone->name.data + zone->name.len, ':')
                       == NULL);
        fuzz_assert(1 <= zone->min_shards
                    && zone->min_shards <= zone->shards
                    && zone->shards <= zone->max_shards
                    && zone->max_shards <= NGX_OMNIBUS_MAX_SHARDS);
        fuzz_assert(zone->bp_low < zone->bp_high && zone->bp_high <= 100);
        fuzz_assert(zone->queue_size >= 1 && zone->concurrency >= 1
                    && zone->dlq_size >= 1 && zone->dedup_ttl >= 1);

        min = sizeof(ngx_omnibus_sh_t)
              + zone->max_shards * (sizeof(ngx_omnibus_shard_t) + 4 * 1024)
              + 16 * ngx_pagesize;

        fuzz_assert(zsize > 0 && (size_t) zsize >= min);
    }

    for (i = 0; i < n; i++) {
        free(value[i].data);
    }

    ngx_destroy_pool(cf.pool);

    return 0;
}
