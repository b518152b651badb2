
/*
 * omnibus_rate_limit KEY rate=Nr/s|Nr/m: at most N publishes per key in
 * any sliding window of one second or minute.  Each key keeps the times
 * of its last N admissions in a ring; a publish is admitted when fewer
 * than N are recorded or the oldest has left the window.  This is exact
 * (the first N of a burst pass) and costs 4 bytes per unit of rate.
 */


#include "ngx_omnibus.h"


#define NGX_OMNIBUS_RATE_MAX  100000


typedef struct {
    ngx_omnibus_node_t  index;
    uint32_t            last;        /* ngx_current_msec of the newest */
    uint32_t            count;
    uint32_t            head;        /* the oldest admission */
    uint32_t            stamp[1];
} ngx_omnibus_limit_node_t;


char *
ngx_omnibus_rate_limit_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_omnibus_loc_conf_t *olcf = conf;

    u_char                            *p;
    ngx_int_t                          n;
    ngx_str_t                         *value, s;
    ngx_omnibus_limit_conf_t          *lc;
    ngx_http_compile_complex_value_t   ccv;

    if (olcf->limit != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    lc = ngx_pcalloc(cf->pool, sizeof(ngx_omnibus_limit_conf_t));
    if (lc == NULL) {
        return NGX_CONF_ERROR;
    }

    lc->key = ngx_palloc(cf->pool, sizeof(ngx_http_complex_value_t));
    if (lc->key == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));

    ccv.cf = cf;
    ccv.value = &value[1];
    ccv.complex_value = lc->key;

    if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (value[2].len < 9 || ngx_strncmp(value[2].data, "rate=", 5) != 0) {
        goto invalid;
    }

    s.data = value[2].data + 5;
    s.len = value[2].len - 5;
    p = s.data + s.len - 3;

    if (ngx_strncmp(p, "r/s", 3) == 0) {
        lc->window = 1000;

    } else if (ngx_strncmp(p, "r/m", 3) == 0) {
        lc->window = 60000;

    } else {
        goto invalid;
    }

    n = ngx_atoi(s.data, s.len - 3);
    if (n == NGX_ERROR || n == 0 || n > NGX_OMNIBUS_RATE_MAX) {
        goto invalid;
    }

    lc->rate = n;
    olcf->limit = lc;

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid rate \"%V\", expected rate=Nr/s or rate=Nr/m "
                       "with N from 1 to %d", &value[2], NGX_OMNIBUS_RATE_MAX);

    return NGX_CONF_ERROR;
}


/* frees up to n nodes from the cold end: idle ones, or any when forced */

static void
ngx_omnibus_limit_expire_locked(ngx_omnibus_zone_t *zone, ngx_uint_t n,
    ngx_msec_t window, ngx_uint_t force)
{
    uint32_t                   now;
    ngx_queue_t               *q;
    ngx_omnibus_sh_t          *sh;
    ngx_omnibus_limit_node_t  *ln;

    sh = zone->sh;
    now = (uint32_t) ngx_current_msec;

    while (n-- && !ngx_queue_empty(&sh->limits_lru)) {
        q = ngx_queue_last(&sh->limits_lru);
        ln = (ngx_omnibus_limit_node_t *)
                 ngx_queue_data(q, ngx_omnibus_node_t, queue);

        if (!force && (uint32_t) (now - ln->last) < window) {
            return;
        }

        ngx_omnibus_index_delete(zone, &sh->limits, &ln->index);
    }
}


/* NGX_OK admitted, NGX_DECLINED limited, NGX_ERROR zone full */

ngx_int_t
ngx_omnibus_rate_limit(ngx_http_request_t *r, ngx_omnibus_zone_t *zone,
    ngx_omnibus_limit_conf_t *lc, time_t *retry_after)
{
    size_t                     size;
    uint32_t                   now, age;
    ngx_str_t                  key;
    ngx_md5_t                  md5;
    ngx_omnibus_sh_t          *sh;
    ngx_omnibus_limit_node_t  *ln;
    u_char                     identity[16];

    if (ngx_http_complex_value(r, lc->key, &key) != NGX_OK) {
        return NGX_ERROR;
    }

    if (key.len == 0) {
        return NGX_OK;
    }

    /* the same key under another rate is another counter */
    ngx_md5_init(&md5);
    ngx_md5_update(&md5, &lc->rate, sizeof(lc->rate));
    ngx_md5_update(&md5, &lc->window, sizeof(lc->window));
    ngx_md5_update(&md5, key.data, key.len);
    ngx_md5_final(identity, &md5);

    sh = zone->sh;
    now = (uint32_t) ngx_current_msec;

    ngx_shmtx_lock(&zone->shpool->mutex);

    ln = (ngx_omnibus_limit_node_t *)
             ngx_omnibus_index_lookup(&sh->limits, identity);

    if (ln == NULL) {
        ngx_omnibus_limit_expire_locked(zone, 2, lc->window, 0);

        size = offsetof(ngx_omnibus_limit_node_t, stamp)
               + lc->rate * sizeof(uint32_t);

        ln = ngx_slab_alloc_locked(zone->shpool, size);

        if (ln == NULL) {
            ngx_omnibus_limit_expire_locked(zone, 8, lc->window, 1);
            ln = ngx_omnibus_zone_alloc_locked(zone, size);
        }

        if (ln == NULL) {
            ngx_shmtx_unlock(&zone->shpool->mutex);
            return NGX_ERROR;
        }

        ln->count = 0;
        ln->head = 0;

        ngx_omnibus_index_insert(&sh->limits, &sh->limits_lru, &ln->index,
                                 identity);

    } else {
        ngx_queue_remove(&ln->index.queue);
        ngx_queue_insert_head(&sh->limits_lru, &ln->index.queue);
    }

    if (ln->count < lc->rate) {
        ln->stamp[(ln->head + ln->count) % lc->rate] = now;
        ln->count++;

    } else {
        age = now - ln->stamp[ln->head];

        if (age < lc->window) {
            ngx_shmtx_unlock(&zone->shpool->mutex);

            *retry_after = (lc->window - age + 999) / 1000;
            return NGX_DECLINED;
        }

        ln->stamp[ln->head] = now;
        ln->head = (ln->head + 1) % lc->rate;
    }

    ln->last = now;

    ngx_shmtx_unlock(&zone->shpool->mutex);

    return NGX_OK;
}
