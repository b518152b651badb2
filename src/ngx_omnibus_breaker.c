
/*
 * A circuit breaker per route, shared by every worker: open after F
 * consecutive failures, half-open after T, closed after S consecutive
 * successes.  While open, deliveries are held by their worker, not
 * dropped; half-open lets one probe per worker through at a time.
 */


#include "ngx_omnibus.h"


static const char  *ngx_omnibus_breaker_names[] = {
    "closed", "open", "half-open"
};


const char *
ngx_omnibus_breaker_name(ngx_uint_t state)
{
    return ngx_omnibus_breaker_names[state];
}


static void
ngx_omnibus_breaker_set_locked(ngx_omnibus_route_t *route,
    ngx_omnibus_route_sh_t *rs, ngx_uint_t state)
{
    if (rs->breaker == state) {
        return;
    }

    ngx_log_error(NGX_LOG_WARN, route->log, 0,
                  "omnibus route \"%V\": circuit breaker %s -> %s",
                  &route->name, ngx_omnibus_breaker_names[rs->breaker],
                  ngx_omnibus_breaker_names[state]);

    rs->breaker = state;
    rs->successes = 0;

    if (state == NGX_OMNIBUS_BREAKER_OPEN) {
        rs->opened = ngx_current_msec;
    }

    if (state == NGX_OMNIBUS_BREAKER_CLOSED) {
        rs->failures = 0;
    }
}


/*
 * NGX_OK: attempt now (*probe set in half-open); NGX_DECLINED: hold it,
 * *wait is how long the breaker stays open (0: until a probe ends).
 */

ngx_int_t
ngx_omnibus_breaker_admit(ngx_omnibus_route_t *route, ngx_uint_t *probe,
    ngx_msec_t *wait)
{
    ngx_int_t                rc;
    ngx_msec_t               elapsed;
    ngx_omnibus_zone_t      *zone;
    ngx_omnibus_route_sh_t  *rs;

    zone = route->zone;
    rs = &zone->sh->routes[route->slot];

    *probe = 0;
    *wait = 0;

    if (rs->breaker == NGX_OMNIBUS_BREAKER_CLOSED) {
        return NGX_OK;                       /* the common case, unlocked */
    }

    rc = NGX_OK;

    ngx_shmtx_lock(&zone->shpool->mutex);

    if (rs->breaker == NGX_OMNIBUS_BREAKER_OPEN) {
        elapsed = ngx_current_msec - rs->opened;

        if (elapsed < route->breaker_timeout) {
            *wait = route->breaker_timeout - elapsed;
            rc = NGX_DECLINED;

        } else {
            ngx_omnibus_breaker_set_locked(route, rs,
                                           NGX_OMNIBUS_BREAKER_HALF_OPEN);
        }
    }

    if (rc == NGX_OK && rs->breaker == NGX_OMNIBUS_BREAKER_HALF_OPEN) {
        if (route->probing) {
            rc = NGX_DECLINED;

        } else {
            route->probing = 1;
            *probe = 1;
        }
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);

    return rc;
}


/* an answer from the endpoint, even a 4xx, shows it is up */

void
ngx_omnibus_breaker_record(ngx_omnibus_route_t *route, ngx_uint_t probe,
    ngx_omnibus_result_e result)
{
    ngx_omnibus_zone_t      *zone;
    ngx_omnibus_route_sh_t  *rs;

    zone = route->zone;
    rs = &zone->sh->routes[route->slot];

    if (probe) {
        route->probing = 0;
    }

    if (result != NGX_OMNIBUS_RETRY && rs->breaker == NGX_OMNIBUS_BREAKER_CLOSED
        && rs->failures == 0)
    {
        return;                              /* the common case, unlocked */
    }

    ngx_shmtx_lock(&zone->shpool->mutex);

    if (result != NGX_OMNIBUS_RETRY) {
        rs->failures = 0;

        if (rs->breaker == NGX_OMNIBUS_BREAKER_HALF_OPEN
            && ++rs->successes >= route->breaker_successes)
        {
            ngx_omnibus_breaker_set_locked(route, rs,
                                           NGX_OMNIBUS_BREAKER_CLOSED);
        }

    } else if (rs->breaker == NGX_OMNIBUS_BREAKER_HALF_OPEN) {
        ngx_omnibus_breaker_set_locked(route, rs, NGX_OMNIBUS_BREAKER_OPEN);

    } else if (rs->breaker == NGX_OMNIBUS_BREAKER_CLOSED
               && ++rs->failures >= route->breaker_failures)
    {
        ngx_omnibus_breaker_set_locked(route, rs, NGX_OMNIBUS_BREAKER_OPEN);
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);
}
