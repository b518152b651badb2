
/*
 * Rate limits: at most N admissions per key in any sliding window of one
 * second or minute.  Each key keeps the times of its last N admissions in
 * a ring; one is admitted when fewer than N are recorded or the oldest
 * has left the window.  This is exact (the first N of a burst pass) and
 * costs 4 bytes per unit of rate.
 */


#include <ngx_omnibus_core.h>


typedef struct {
    ngx_omnibus_node_t  index;
    uint32_t            last;        /* ngx_current_msec of the newest */
    uint32_t            count;
    uint32_t            head;        /* the oldest admission */
    uint32_t            stamp[1];
} ngx_omnibus_limit_node_t;


/* "Nr/s" or "Nr/m" */

ngx_int_t
ngx_omnibus_rate_parse(ngx_str_t *value, ngx_omnibus_rate_t *rate)
{
    u_char     *p;
    ngx_int_t   n;

    if (value->len < 4) {
        return NGX_ERROR;
    }

    p = value->data + value->len - 3;

    if (ngx_strncmp(p, "r/s", 3) == 0) {
        rate->window = 1000;

    } else if (ngx_strncmp(p, "r/m", 3) == 0) {
        rate->window = 60000;

    } else {
        return NGX_ERROR;
    }

    n = ngx_atoi(value->data, value->len - 3);
    if (n == NGX_ERROR || n == 0 || n > NGX_OMNIBUS_RATE_MAX) {
        return NGX_ERROR;
    }

    rate->rate = n;

    return NGX_OK;
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

        ngx_omnibus_index_delete(zone->shpool, &sh->limits, &ln->index);
    }
}


/* the same key under another rate is another counter */

void
ngx_omnibus_limit_identity(ngx_omnibus_rate_t *rate, ngx_str_t *key,
    u_char *identity)
{
    ngx_md5_t  md5;

    ngx_md5_init(&md5);
    ngx_md5_update(&md5, &rate->rate, sizeof(rate->rate));
    ngx_md5_update(&md5, &rate->window, sizeof(rate->window));
    ngx_md5_update(&md5, key->data, key->len);
    ngx_md5_final(identity, &md5);
}


/* NGX_OK admitted, NGX_DECLINED limited, NGX_ERROR zone full */

ngx_int_t
ngx_omnibus_limit_admit(ngx_omnibus_zone_t *zone, ngx_omnibus_rate_t *rate,
    ngx_str_t *key, time_t *retry_after)
{
    size_t                     size;
    uint32_t                   now, age;
    ngx_omnibus_sh_t          *sh;
    ngx_omnibus_limit_node_t  *ln;
    u_char                     identity[NGX_OMNIBUS_IDENTITY_LEN];

    ngx_omnibus_limit_identity(rate, key, identity);

    sh = zone->sh;
    now = (uint32_t) ngx_current_msec;

    ngx_shmtx_lock(&zone->shpool->mutex);

    ln = (ngx_omnibus_limit_node_t *)
             ngx_omnibus_index_lookup(&sh->limits, identity);

    if (ln == NULL) {
        ngx_omnibus_limit_expire_locked(zone, 2, rate->window, 0);

        size = offsetof(ngx_omnibus_limit_node_t, stamp)
               + rate->rate * sizeof(uint32_t);

        ln = ngx_slab_alloc_locked(zone->shpool, size);

        if (ln == NULL) {
            ngx_omnibus_limit_expire_locked(zone, 8, rate->window, 1);
            ln = ngx_omnibus_alloc_locked(zone, size);
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

    if (ln->count < rate->rate) {
        ln->stamp[(ln->head + ln->count) % rate->rate] = now;
        ln->count++;

    } else {
        age = now - ln->stamp[ln->head];

        if (age < rate->window) {
            ngx_shmtx_unlock(&zone->shpool->mutex);

            *retry_after = (rate->window - age + 999) / 1000;
            return NGX_DECLINED;
        }

        ln->stamp[ln->head] = now;
        ln->head = (ln->head + 1) % rate->rate;
    }

    ln->last = now;

    ngx_shmtx_unlock(&zone->shpool->mutex);

    return NGX_OK;
}
