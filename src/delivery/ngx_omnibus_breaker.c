
/*
 * A circuit breaker shared by every worker: open after F consecutive
 * failures, half-open after T, closed after S consecutive successes.
 * While open, the caller holds its work, it does not drop it; half-open
 * lets one probe per worker through at a time.
 */


#include <ngx_omnibus_delivery.h>


static void ngx_omnibus_breaker_set_locked(ngx_omnibus_breaker_t *b,
    ngx_uint_t state);


static const char  *ngx_omnibus_breaker_names[] = {
    "closed", "open", "half-open"
};


/* FAILURES:TIME:SUCCESSES */

ngx_int_t
ngx_omnibus_breaker_parse(ngx_str_t *value, ngx_omnibus_breaker_conf_t *conf)
{
    u_char      *c1, *c2, *last;
    ngx_int_t    n;
    ngx_str_t    v;
    ngx_msec_t   ms;

    last = value->data + value->len;

    c1 = ngx_strlchr(value->data, last, ':');
    c2 = c1 ? ngx_strlchr(c1 + 1, last, ':') : NULL;

    if (c2 == NULL) {
        return NGX_ERROR;
    }

    n = ngx_atoi(value->data, c1 - value->data);
    if (n == NGX_ERROR || n == 0) {
        return NGX_ERROR;
    }

    conf->failures = n;

    v.data = c1 + 1;
    v.len = c2 - c1 - 1;

    ms = ngx_parse_time(&v, 0);
    if (ms == (ngx_msec_t) NGX_ERROR || ms == 0) {
        return NGX_ERROR;
    }

    conf->timeout = ms;

    n = ngx_atoi(c2 + 1, last - c2 - 1);
    if (n == NGX_ERROR || n == 0) {
        return NGX_ERROR;
    }

    conf->successes = n;

    return NGX_OK;
}


const char *
ngx_omnibus_breaker_name(ngx_uint_t state)
{
    return ngx_omnibus_breaker_names[state];
}


static void
ngx_omnibus_breaker_set_locked(ngx_omnibus_breaker_t *b, ngx_uint_t state)
{
    ngx_omnibus_breaker_sh_t  *sh;

    sh = b->sh;

    if (sh->state == state) {
        return;
    }

    ngx_log_error(NGX_LOG_WARN, b->log, 0,
                  "omnibus %s \"%V\": circuit breaker %s -> %s",
                  b->kind, b->name, ngx_omnibus_breaker_names[sh->state],
                  ngx_omnibus_breaker_names[state]);

    sh->state = state;
    sh->successes = 0;

    if (state == NGX_OMNIBUS_BREAKER_OPEN) {
        sh->opened = ngx_current_msec;
    }

    if (state == NGX_OMNIBUS_BREAKER_CLOSED) {
        sh->failures = 0;
    }
}


/*
 * NGX_OK: go now (*probe set in half-open); NGX_DECLINED: hold it, *wait
 * is how long the breaker stays open (0: until a probe ends).
 */

ngx_int_t
ngx_omnibus_breaker_admit(ngx_omnibus_breaker_t *b, ngx_uint_t *probe,
    ngx_msec_t *wait)
{
    ngx_int_t                  rc;
    ngx_msec_t                 elapsed;
    ngx_omnibus_breaker_sh_t  *sh;

    sh = b->sh;

    *probe = 0;
    *wait = 0;

    if (sh->state == NGX_OMNIBUS_BREAKER_CLOSED) {
        return NGX_OK;                       /* the common case, unlocked */
    }

    rc = NGX_OK;

    ngx_shmtx_lock(&b->shpool->mutex);

    if (sh->state == NGX_OMNIBUS_BREAKER_OPEN) {
        elapsed = ngx_current_msec - sh->opened;

        if (elapsed < b->conf.timeout) {
            *wait = b->conf.timeout - elapsed;
            rc = NGX_DECLINED;

        } else {
            ngx_omnibus_breaker_set_locked(b, NGX_OMNIBUS_BREAKER_HALF_OPEN);
        }
    }

    if (rc == NGX_OK && sh->state == NGX_OMNIBUS_BREAKER_HALF_OPEN) {
        if (b->probing) {
            rc = NGX_DECLINED;

        } else {
            b->probing = 1;
            *probe = 1;
        }
    }

    ngx_shmtx_unlock(&b->shpool->mutex);

    return rc;
}


/* an answer from the other end, even a refusal, shows it is up */

void
ngx_omnibus_breaker_record(ngx_omnibus_breaker_t *b, ngx_uint_t probe,
    ngx_uint_t failed)
{
    ngx_omnibus_breaker_sh_t  *sh;

    sh = b->sh;

    if (probe) {
        b->probing = 0;
    }

    if (!failed && sh->state == NGX_OMNIBUS_BREAKER_CLOSED
        && sh->failures == 0)
    {
        return;                              /* the common case, unlocked */
    }

    ngx_shmtx_lock(&b->shpool->mutex);

    if (!failed) {
        sh->failures = 0;

        if (sh->state == NGX_OMNIBUS_BREAKER_HALF_OPEN
            && ++sh->successes >= b->conf.successes)
        {
            ngx_omnibus_breaker_set_locked(b, NGX_OMNIBUS_BREAKER_CLOSED);
        }

    } else if (sh->state == NGX_OMNIBUS_BREAKER_HALF_OPEN) {
        ngx_omnibus_breaker_set_locked(b, NGX_OMNIBUS_BREAKER_OPEN);

    } else if (sh->state == NGX_OMNIBUS_BREAKER_CLOSED
               && ++sh->failures >= b->conf.failures)
    {
        ngx_omnibus_breaker_set_locked(b, NGX_OMNIBUS_BREAKER_OPEN);
    }

    ngx_shmtx_unlock(&b->shpool->mutex);
}


/*
 * The other end answers in full (a client library's connection set up):
 * for a backend that is proof enough, where a route needs its probes.
 */

void
ngx_omnibus_breaker_close(ngx_omnibus_breaker_t *b)
{
    if (b->sh->state == NGX_OMNIBUS_BREAKER_CLOSED) {
        return;
    }

    ngx_shmtx_lock(&b->shpool->mutex);
    ngx_omnibus_breaker_set_locked(b, NGX_OMNIBUS_BREAKER_CLOSED);
    ngx_shmtx_unlock(&b->shpool->mutex);

    b->probing = 0;
}


/* how long an open breaker stays open; at least 1 ms */

ngx_msec_t
ngx_omnibus_breaker_open_for(ngx_omnibus_breaker_t *b)
{
    ngx_msec_t  elapsed;

    elapsed = ngx_current_msec - b->sh->opened;

    return elapsed < b->conf.timeout ? b->conf.timeout - elapsed : 1;
}
