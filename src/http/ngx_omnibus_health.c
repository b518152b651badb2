
/*
 * omnibus_health ZONE [ready]: liveness answers 200 while the zone is
 * mapped; readiness answers 503 while any shard is paused or over its
 * high watermark, or while a store loads its rows or (mode=sync) cannot
 * be reached, so a load balancer sends producers elsewhere.
 */


#include <ngx_omnibus_http.h>


static ngx_uint_t
ngx_omnibus_health_store_up(ngx_omnibus_sh_t *sh)
{
    ngx_omnibus_store_proc_t  total;

    ngx_omnibus_store_totals(sh, &total);

    return total.up;
}


ngx_int_t
ngx_omnibus_health_handler(ngx_http_request_t *r)
{
    u_char                   reason[64];
    ngx_int_t                rc;
    ngx_uint_t               s, n, queued, status;
    ngx_omnibus_sh_t        *sh;
    ngx_omnibus_out_t        out;
    ngx_omnibus_zone_t      *zone;
    ngx_omnibus_shard_t     *shard;
    ngx_omnibus_loc_conf_t  *olcf;

    if (ngx_omnibus_read_only(r, &rc) != NGX_OK) {
        return rc;
    }

    olcf = ngx_http_get_module_loc_conf(r, ngx_omnibus_module);
    zone = olcf->health;
    sh = zone->sh;

    n = sh->nshards;
    queued = 0;
    reason[0] = '\0';

    for (s = 0; s < n; s++) {
        shard = &sh->shards[s];
        queued += shard->queued;

        if (reason[0] == '\0' && olcf->ready) {
            if (shard->paused) {
                ngx_sprintf(reason, "shard %ui is paused%Z", s);

            } else if (shard->backpressure) {
                ngx_sprintf(reason, "shard %ui is over its high "
                            "watermark%Z", s);
            }
        }
    }

    /* a store: ready once its rows are loaded, and reachable if sync */

    if (reason[0] == '\0' && olcf->ready && zone->store) {
        if (sh->store.state != NGX_OMNIBUS_STORE_READY) {
            ngx_sprintf(reason, "the store is loading stored messages%Z");

        } else if (zone->store->sync
                   && (ngx_omnibus_health_store_up(sh) == 0
                       || sh->store.breaker.state
                          == NGX_OMNIBUS_BREAKER_OPEN))
        {
            ngx_sprintf(reason, "PostgreSQL cannot be reached%Z");
        }
    }

    status = reason[0] ? NGX_HTTP_SERVICE_UNAVAILABLE : NGX_HTTP_OK;

    ngx_omnibus_out_init(&out, r);
    ngx_omnibus_out_printf(&out, "{\"status\":\"%s\",\"zone\":",
                           reason[0] ? "unavailable" : "ok");
    ngx_omnibus_out_json_str(&out, zone->name.data, zone->name.len);
    ngx_omnibus_out_printf(&out, ",\"shards\":%ui,\"queued\":%ui", n, queued);

    if (reason[0]) {
        ngx_omnibus_out_printf(&out, ",\"reason\":\"%s\"", reason);
    }

    ngx_omnibus_out_printf(&out, "}\n");

    return ngx_omnibus_out_send(&out, status, "application/json");
}
