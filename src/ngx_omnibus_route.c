
/*
 * omnibus_route ZONE PATTERN URL [params]: which topics go where.  Each
 * route owns a slot in the zone (found again by its identity after a
 * reload) for the state every worker shares: breaker, counters.
 */


#include "ngx_omnibus.h"


extern ngx_omnibus_sink_t  ngx_omnibus_sink_http;


static char *ngx_omnibus_route_param(ngx_conf_t *cf,
    ngx_omnibus_route_t *route, ngx_str_t *value);


char *
ngx_omnibus_route_directive(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    u_char                *p;
    ngx_str_t             *value;
    ngx_url_t              u;
    ngx_uint_t             i;
    ngx_omnibus_zone_t    *zone;
    ngx_omnibus_route_t   *route, **rp;

    value = cf->args->elts;

    if (cf->args->nelts < 4) {
        return "needs a zone, a topic pattern and a URL";
    }

    zone = ngx_omnibus_zone_use(cf, &value[1]);
    if (zone == NULL) {
        return NGX_CONF_ERROR;
    }

    if (zone->routes.nelts == NGX_OMNIBUS_MAX_ROUTES) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "too many routes in omnibus zone \"%V\": "
                           "at most %d", &zone->name, NGX_OMNIBUS_MAX_ROUTES);
        return NGX_CONF_ERROR;
    }

    if (ngx_omnibus_pattern_valid(&value[2]) != NGX_OK) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid topic pattern \"%V\": dot-separated "
                           "tokens of [A-Za-z0-9_:-], \"*\" for one token, "
                           "\">\" for the rest at the end", &value[2]);
        return NGX_CONF_ERROR;
    }

    route = ngx_pcalloc(cf->pool, sizeof(ngx_omnibus_route_t));
    if (route == NULL) {
        return NGX_CONF_ERROR;
    }

    route->zone = zone;
    route->pattern = value[2];
    route->url = value[3];
    route->sink = &ngx_omnibus_sink_http;

    route->timeout = 5000;
    route->retries = 3;
    route->backoff = 10;
    route->max_backoff = 30000;
    route->breaker_failures = 5;
    route->breaker_timeout = 60000;
    route->breaker_successes = 3;

    if (value[3].len <= 7
        || ngx_strncasecmp(value[3].data, (u_char *) "http://", 7) != 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid route URL \"%V\": expected "
                           "http://HOST[:PORT][/PATH]", &value[3]);
        return NGX_CONF_ERROR;
    }

    ngx_memzero(&u, sizeof(ngx_url_t));

    u.url.data = value[3].data + 7;
    u.url.len = value[3].len - 7;
    u.default_port = 80;
    u.uri_part = 1;
    u.no_resolve = 1;

    if (ngx_parse_url(cf->pool, &u) != NGX_OK) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid route URL \"%V\": %s", &value[3],
                           u.err ? u.err : "cannot parse");
        return NGX_CONF_ERROR;
    }

    /*
     * An upstream {} block by that name, or the host resolved now.  It
     * parses the URL again and appends to u.addrs, sized for one parse.
     */

    u.addrs = NULL;
    u.naddrs = 0;

    route->upstream = ngx_http_upstream_add(cf, &u, 0);
    if (route->upstream == NULL) {
        return NGX_CONF_ERROR;
    }

    route->host.data = u.url.data;
    route->host.len = u.uri.len ? (size_t) (u.uri.data - u.url.data)
                                : u.url.len;

    if (u.uri.len) {
        route->uri = u.uri;

    } else {
        ngx_str_set(&route->uri, "/");
    }

    for (i = 4; i < cf->args->nelts; i++) {
        if (ngx_omnibus_route_param(cf, route, &value[i]) != NGX_CONF_OK) {
            return NGX_CONF_ERROR;
        }
    }

    if (route->name.len == 0) {
        route->name.len = value[2].len + 2 + value[3].len;
        route->name.data = ngx_pnalloc(cf->pool, route->name.len);
        if (route->name.data == NULL) {
            return NGX_CONF_ERROR;
        }

        p = ngx_cpymem(route->name.data, value[2].data, value[2].len);
        *p++ = '-';
        *p++ = '>';
        ngx_memcpy(p, value[3].data, value[3].len);
    }

    route->identity = ngx_crc32_short(route->name.data, route->name.len)
                      ^ ngx_crc32_short(value[2].data, value[2].len) ^ 1;

    zone->route_concurrency = ngx_max(zone->route_concurrency,
                                      route->concurrency);

    if (route->concurrency == 1) {
        zone->ordered = 1;
    }

    rp = ngx_array_push(&zone->routes);
    if (rp == NULL) {
        return NGX_CONF_ERROR;
    }

    *rp = route;

    return NGX_CONF_OK;
}


static char *
ngx_omnibus_route_param(ngx_conf_t *cf, ngx_omnibus_route_t *route,
    ngx_str_t *value)
{
    u_char      *c1, *c2, *last;
    ngx_int_t    n;
    ngx_str_t    v;
    ngx_msec_t   ms;

    last = value->data + value->len;

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
        c1 = ngx_strlchr(value->data, last, '=') + 1;
        v.data = c1;
        v.len = last - c1;

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
        c1 = ngx_strlchr(value->data + 8, last, ':');
        c2 = c1 ? ngx_strlchr(c1 + 1, last, ':') : NULL;

        if (c2 == NULL) {
            goto invalid;
        }

        n = ngx_atoi(value->data + 8, c1 - value->data - 8);
        if (n == NGX_ERROR || n == 0) {
            goto invalid;
        }

        route->breaker_failures = n;

        v.data = c1 + 1;
        v.len = c2 - c1 - 1;

        ms = ngx_parse_time(&v, 0);
        if (ms == (ngx_msec_t) NGX_ERROR || ms == 0) {
            goto invalid;
        }

        route->breaker_timeout = ms;

        n = ngx_atoi(c2 + 1, last - c2 - 1);
        if (n == NGX_ERROR || n == 0) {
            goto invalid;
        }

        route->breaker_successes = n;

        return NGX_CONF_OK;
    }

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid omnibus_route parameter \"%V\" (expected "
                       "timeout=TIME, retries=N, backoff=TIME, "
                       "max_backoff=TIME, breaker=FAILURES:TIME:SUCCESSES, "
                       "concurrency=N or name=LABEL)", value);

    return NGX_CONF_ERROR;
}


/* in the master, when the zone is created or adopted */

void
ngx_omnibus_route_slots_locked(ngx_omnibus_zone_t *zone)
{
    ngx_uint_t               i, s, found;
    ngx_omnibus_sh_t        *sh;
    ngx_omnibus_route_t    **routes;
    ngx_omnibus_route_sh_t  *rs;

    sh = zone->sh;
    routes = zone->routes.elts;

    for (s = 0; s < NGX_OMNIBUS_MAX_ROUTES; s++) {
        sh->routes[s].used = 0;
    }

    for (i = 0; i < zone->routes.nelts; i++) {
        found = NGX_OMNIBUS_MAX_ROUTES;

        /* the route's own slot, else a never used one, else any free */

        for (s = 0; s < NGX_OMNIBUS_MAX_ROUTES; s++) {
            rs = &sh->routes[s];

            if (rs->identity == routes[i]->identity && !rs->used) {
                found = s;
                break;
            }

            if (found == NGX_OMNIBUS_MAX_ROUTES && rs->identity == 0) {
                found = s;
            }
        }

        for (s = 0; found == NGX_OMNIBUS_MAX_ROUTES
                    && s < NGX_OMNIBUS_MAX_ROUTES; s++)
        {
            if (!sh->routes[s].used) {
                found = s;
            }
        }

        rs = &sh->routes[found];

        if (rs->identity != routes[i]->identity) {
            ngx_memzero(rs, sizeof(ngx_omnibus_route_sh_t));
            rs->identity = routes[i]->identity;
        }

        rs->used = 1;
        routes[i]->slot = found;
    }
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
            mask |= (uint64_t) 1 << routes[i]->slot;
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
        ngx_queue_init(&route->idle);

        zone->by_slot[route->slot] = route;

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
