
/*
 * omnibus_route ZONE PATTERN URL [params]: which topics go where.  The
 * URL's scheme picks the sink; the parameters here are those every sink
 * shares (retries, backoff, breaker, concurrency, attempt timeout).  Each
 * route claims a slot in the zone for the state every worker shares:
 * breaker, counters.
 */


#include <ngx_omnibus_delivery.h>


static char *ngx_omnibus_route_param(ngx_conf_t *cf,
    ngx_omnibus_route_t *route, ngx_str_t *value);
static ngx_omnibus_sink_t *ngx_omnibus_route_sink(ngx_str_t *url,
    ngx_omnibus_sink_t **sinks);


/* value[0] is the pattern, value[1] the URL, then the parameters */

char *
ngx_omnibus_route_parse(ngx_conf_t *cf, ngx_omnibus_zone_t *zone,
    ngx_str_t *value, ngx_uint_t nvalue, ngx_omnibus_sink_t **sinks)
{
    char                  *rv;
    u_char                *p;
    ngx_int_t              rc;
    ngx_uint_t             i;
    ngx_omnibus_route_t   *route, **rp;

    if (ngx_omnibus_pattern_valid(&value[0]) != NGX_OK) {
        ngx_omnibus_conf_error(cf, "invalid topic pattern \"%V\": "
                               "dot-separated tokens of [A-Za-z0-9_:-], \"*\" "
                               "for one token, \">\" for the rest at the end",
                               &value[0]);
        return NGX_CONF_ERROR;
    }

    route = ngx_pcalloc(cf->pool, sizeof(ngx_omnibus_route_t));
    if (route == NULL) {
        return NGX_CONF_ERROR;
    }

    route->zone = zone;
    route->pattern = value[0];
    route->url = value[1];

    route->timeout = 5000;
    route->retries = 3;
    route->backoff = 10;
    route->max_backoff = 30000;
    route->breaker.conf.failures = 5;
    route->breaker.conf.timeout = 60000;
    route->breaker.conf.successes = 3;

    route->sink = ngx_omnibus_route_sink(&value[1], sinks);

    if (route->sink == NULL) {
        ngx_omnibus_conf_error(cf,
                               "invalid route URL \"%V\": no sink takes its "
                               "scheme (expected http://HOST[:PORT][/PATH])",
                               &value[1]);
        return NGX_CONF_ERROR;
    }

    rv = route->sink->parse(cf, route, &value[1]);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    for (i = 2; i < nvalue; i++) {
        if (ngx_omnibus_route_param(cf, route, &value[i]) != NGX_CONF_OK) {
            return NGX_CONF_ERROR;
        }
    }

    if (route->name.len == 0) {
        route->name.len = value[0].len + 2 + value[1].len;
        route->name.data = ngx_pnalloc(cf->pool, route->name.len);
        if (route->name.data == NULL) {
            return NGX_CONF_ERROR;
        }

        p = ngx_cpymem(route->name.data, value[0].data, value[0].len);
        *p++ = '-';
        *p++ = '>';
        ngx_memcpy(p, value[1].data, value[1].len);
    }

    route->slot.identity = ngx_crc32_short(route->name.data, route->name.len)
                           ^ ngx_crc32_short(value[0].data, value[0].len)
                           ^ 1;

    route->breaker.kind = "route";
    route->breaker.name = &route->name;

    rc = ngx_omnibus_zone_add_slot(zone, &route->slot);

    if (rc == NGX_DECLINED) {
        ngx_omnibus_conf_error(cf, "too many routes in omnibus zone "
                               "\"%V\": at most %d", &zone->name,
                               NGX_OMNIBUS_MAX_ROUTES);
        return NGX_CONF_ERROR;
    }

    rp = ngx_array_push(&zone->routes);
    if (rc == NGX_ERROR || rp == NULL) {
        return NGX_CONF_ERROR;
    }

    *rp = route;

    zone->route_concurrency = ngx_max(zone->route_concurrency,
                                      route->concurrency);

    if (route->concurrency == 1) {
        zone->ordered = 1;
    }

    return NGX_CONF_OK;
}


static ngx_omnibus_sink_t *
ngx_omnibus_route_sink(ngx_str_t *url, ngx_omnibus_sink_t **sinks)
{
    size_t               n;
    ngx_omnibus_sink_t  *sink;

    for ( /* void */ ; *sinks; sinks++) {
        sink = *sinks;
        n = sink->name.len;

        if (url->len > n + 3
            && ngx_strncasecmp(url->data, sink->name.data, n) == 0
            && ngx_strncmp(url->data + n, "://", 3) == 0)
        {
            return sink;
        }
    }

    return NULL;
}


static char *
ngx_omnibus_route_param(ngx_conf_t *cf, ngx_omnibus_route_t *route,
    ngx_str_t *value)
{
    u_char      *eq, *last;
    ngx_int_t    n;
    ngx_str_t    v;
    ngx_msec_t   ms;

    last = value->data + value->len;

    if (route->sink->param) {
        n = route->sink->param(cf, route, value);

        if (n == NGX_OK) {
            return NGX_CONF_OK;
        }

        if (n == NGX_ERROR) {
            return NGX_CONF_ERROR;
        }
    }

    if (ngx_strncmp(value->data, "name=", 5) == 0 && value->len > 5) {
        route->name.data = value->data + 5;
        route->name.len = value->len - 5;

        if (ngx_strlchr(route->name.data, last, '"')
            || ngx_strlchr(route->name.data, last, '\\'))
        {
            goto invalid;
        }

        return NGX_CONF_OK;
    }

    if (ngx_strncmp(value->data, "retries=", 8) == 0) {
        n = ngx_atoi(value->data + 8, value->len - 8);
        if (n == NGX_ERROR || n > 100) {
            goto invalid;
        }

        route->retries = n;
        return NGX_CONF_OK;
    }

    if (ngx_strncmp(value->data, "concurrency=", 12) == 0) {
        n = ngx_atoi(value->data + 12, value->len - 12);
        if (n == NGX_ERROR || n == 0 || n > 1024) {
            goto invalid;
        }

        route->concurrency = n;
        return NGX_CONF_OK;
    }

    if (ngx_strncmp(value->data, "timeout=", 8) == 0
        || ngx_strncmp(value->data, "backoff=", 8) == 0
        || ngx_strncmp(value->data, "max_backoff=", 12) == 0)
    {
        eq = ngx_strlchr(value->data, last, '=') + 1;
        v.data = eq;
        v.len = last - eq;

        ms = ngx_parse_time(&v, 0);
        if (ms == (ngx_msec_t) NGX_ERROR || ms == 0) {
            goto invalid;
        }

        if (value->data[0] == 't') {
            route->timeout = ms;

        } else if (value->data[0] == 'b') {
            route->backoff = ms;

        } else {
            route->max_backoff = ms;
        }

        return NGX_CONF_OK;
    }

    if (ngx_strncmp(value->data, "breaker=", 8) == 0) {
        v.data = value->data + 8;
        v.len = value->len - 8;

        if (ngx_omnibus_breaker_parse(&v, &route->breaker.conf) != NGX_OK) {
            goto invalid;
        }

        return NGX_CONF_OK;
    }

invalid:

    ngx_omnibus_conf_error(cf, "invalid parameter \"%V\" (expected "
                           "timeout=TIME, retries=N, backoff=TIME, "
                           "max_backoff=TIME, "
                           "breaker=FAILURES:TIME:SUCCESSES, "
                           "concurrency=N, name=LABEL%s%s)", value,
                           route->sink->params ? ", " : "",
                           route->sink->params ? route->sink->params : "");

    return NGX_CONF_ERROR;
}


uint64_t
ngx_omnibus_route_match(ngx_omnibus_zone_t *zone, ngx_omnibus_msg_t *msg)
{
    uint64_t               mask;
    ngx_uint_t             i;
    ngx_omnibus_route_t  **routes;

    mask = 0;
    routes = zone->routes.elts;

    for (i = 0; i < zone->routes.nelts; i++) {
        if (ngx_omnibus_pattern_match(&routes[i]->pattern,
                                      ngx_omnibus_msg_topic(msg),
                                      msg->topic_len))
        {
            mask |= (uint64_t) 1 << routes[i]->slot.index;
        }
    }

    return mask;
}


ngx_int_t
ngx_omnibus_route_init_process(ngx_omnibus_zone_t *zone, ngx_cycle_t *cycle)
{
    ngx_uint_t             i, s;
    ngx_omnibus_route_t  **routes, *route;

    routes = zone->routes.elts;

    for (i = 0; i < zone->routes.nelts; i++) {
        route = routes[i];

        route->log = cycle->log;
        route->active = ngx_pcalloc(cycle->pool,
                                    zone->sh->cap_shards * sizeof(ngx_uint_t));
        route->waiting = ngx_palloc(cycle->pool,
                                    zone->sh->cap_shards
                                    * sizeof(ngx_queue_t));
        if (route->active == NULL || route->waiting == NULL) {
            return NGX_ERROR;
        }

        for (s = 0; s < zone->sh->cap_shards; s++) {
            ngx_queue_init(&route->waiting[s]);
        }

        ngx_queue_init(&route->held);

        route->breaker.sh = &ngx_omnibus_route_sh(route)->breaker;
        route->breaker.shpool = zone->shpool;
        route->breaker.log = cycle->log;

        zone->by_slot[route->slot.index] = route;

        if (route->sink->init_process
            && route->sink->init_process(route, cycle) != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


void
ngx_omnibus_route_exit_process(ngx_omnibus_zone_t *zone)
{
    ngx_uint_t             i;
    ngx_omnibus_route_t  **routes;

    routes = zone->routes.elts;

    for (i = 0; i < zone->routes.nelts; i++) {
        if (routes[i]->sink->exit_process) {
            routes[i]->sink->exit_process(routes[i]);
        }
    }
}
