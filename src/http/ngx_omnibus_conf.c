
/*
 * The directives: each finds its zone by name and hands its parameters
 * to the layer below that owns them.
 */


#include <ngx_omnibus_http.h>


/* the zone keeps message lengths in 32 bits */
#define NGX_OMNIBUS_MESSAGE_MAX       (1024 * 1024 * 1024)

#define NGX_OMNIBUS_HEARTBEAT         15000
#define NGX_OMNIBUS_SUB_BUFFER        (1024 * 1024)
#define NGX_OMNIBUS_SUB_BUFFER_MIN    4096


static ngx_omnibus_zone_t *ngx_omnibus_zone_lookup(ngx_conf_t *cf,
    ngx_str_t *name);
static ngx_omnibus_zone_t *ngx_omnibus_zone_use(ngx_conf_t *cf,
    ngx_str_t *name);


static ngx_omnibus_zone_t *
ngx_omnibus_zone_lookup(ngx_conf_t *cf, ngx_str_t *name)
{
    ngx_uint_t                i;
    ngx_omnibus_zone_t      **zones;
    ngx_omnibus_main_conf_t  *omcf;

    omcf = ngx_http_conf_get_module_main_conf(cf, ngx_omnibus_module);
    zones = omcf->zones.elts;

    for (i = 0; i < omcf->zones.nelts; i++) {
        if (zones[i]->name.len == name->len
            && ngx_strncmp(zones[i]->name.data, name->data, name->len) == 0)
        {
            return zones[i];
        }
    }

    return NULL;
}


/* the zone a directive names, which must be declared before */

static ngx_omnibus_zone_t *
ngx_omnibus_zone_use(ngx_conf_t *cf, ngx_str_t *name)
{
    ngx_omnibus_zone_t  *zone;

    zone = ngx_omnibus_zone_lookup(cf, name);

    if (zone == NULL) {
        ngx_omnibus_conf_error(cf,
                               "unknown omnibus zone \"%V\" (declare it with "
                               "omnibus_zone before use)", name);
    }

    return zone;
}


char *
ngx_omnibus_zone_directive(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_omnibus_main_conf_t *omcf = conf;

    ssize_t               size;
    ngx_str_t            *value;
    ngx_omnibus_zone_t   *zone, **zp;

    value = cf->args->elts;

    zone = ngx_omnibus_zone_create(cf);
    if (zone == NULL) {
        return NGX_CONF_ERROR;
    }

    if (ngx_omnibus_zone_parse(cf, zone, &value[1], cf->args->nelts - 1,
                               &size)
        != NGX_CONF_OK)
    {
        return NGX_CONF_ERROR;
    }

    if (ngx_omnibus_zone_lookup(cf, &zone->name) != NULL) {
        ngx_omnibus_conf_error(cf,
                               "duplicate omnibus zone \"%V\"", &zone->name);
        return NGX_CONF_ERROR;
    }

    if (ngx_omnibus_zone_shm(cf, zone, size, &ngx_omnibus_module)
        != NGX_CONF_OK)
    {
        return NGX_CONF_ERROR;
    }

    zp = ngx_array_push(&omcf->zones);
    if (zp == NULL) {
        return NGX_CONF_ERROR;
    }

    *zp = zone;

    return NGX_CONF_OK;
}


/* omnibus_route ZONE PATTERN URL [params]; cmd->post: the sink table */

char *
ngx_omnibus_route_directive(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_str_t           *value;
    ngx_omnibus_zone_t  *zone;

    value = cf->args->elts;

    if (cf->args->nelts < 4) {
        return "needs a zone, a topic pattern and a URL";
    }

    zone = ngx_omnibus_zone_use(cf, &value[1]);
    if (zone == NULL) {
        return NGX_CONF_ERROR;
    }

    return ngx_omnibus_route_parse(cf, zone, &value[2], cf->args->nelts - 2,
                                   cmd->post);
}


/*
 * omnibus_autoscale ZONE [params], omnibus_kafka_consume ZONE BROKERS
 * [params]: the zone, then the rest to the parser in cmd->post
 */

char *
ngx_omnibus_zone_params_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_str_t                  *value;
    ngx_omnibus_zone_t         *zone;
    ngx_omnibus_zone_parser_t  *parser;

    value = cf->args->elts;
    parser = cmd->post;

    zone = ngx_omnibus_zone_use(cf, &value[1]);
    if (zone == NULL) {
        return NGX_CONF_ERROR;
    }

    return parser->parse(cf, zone, &value[2], cf->args->nelts - 2);
}


/* omnibus_publish, omnibus_admin, omnibus_health, omnibus_metrics */

char *
ngx_omnibus_handler_directive(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_omnibus_loc_conf_t *olcf = conf;

    ngx_str_t                 *value;
    ngx_omnibus_zone_t        *zone, **field;
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (clcf->handler != NULL) {
        return "is duplicate: the location already has a content handler";
    }

    value = cf->args->elts;

    if (cmd->offset == offsetof(ngx_omnibus_loc_conf_t, metrics)) {
        olcf->metrics = 1;
        clcf->handler = ngx_omnibus_metrics_handler;
        return NGX_CONF_OK;
    }

    zone = ngx_omnibus_zone_use(cf, &value[1]);
    if (zone == NULL) {
        return NGX_CONF_ERROR;
    }

    field = (ngx_omnibus_zone_t **) ((char *) olcf + cmd->offset);
    *field = zone;

    if (cmd->offset == offsetof(ngx_omnibus_loc_conf_t, publish)) {
        clcf->handler = ngx_omnibus_publish_handler;

        /*
         * omnibus_max_message_size owns the size decision, so that an
         * oversized message gets the JSON 413 instead of the core's page
         */
        if (clcf->client_max_body_size == NGX_CONF_UNSET) {
            clcf->client_max_body_size = 0;
        }

        return NGX_CONF_OK;
    }

    if (cmd->offset == offsetof(ngx_omnibus_loc_conf_t, admin)) {
        clcf->handler = ngx_omnibus_admin_handler;
        return NGX_CONF_OK;
    }

    clcf->handler = ngx_omnibus_health_handler;

    if (cf->args->nelts == 3) {
        if (ngx_strcmp(value[2].data, "ready") != 0) {
            ngx_omnibus_conf_error(cf,
                                   "invalid parameter \"%V\", "
                                   "expected \"ready\"",
                                   &value[2]);
            return NGX_CONF_ERROR;
        }

        olcf->ready = 1;
    }

    return NGX_CONF_OK;
}


/* omnibus_subscribe ZONE [heartbeat=TIME] [buffer=SIZE] */

char *
ngx_omnibus_subscribe_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_omnibus_loc_conf_t *olcf = conf;

    ngx_str_t                 *value, v;
    ngx_uint_t                 i;
    ngx_http_core_loc_conf_t  *clcf;

    value = cf->args->elts;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (clcf->handler != NULL) {
        return "is duplicate: the location already has a content handler";
    }

    olcf->subscribe = ngx_omnibus_zone_use(cf, &value[1]);
    if (olcf->subscribe == NULL) {
        return NGX_CONF_ERROR;
    }

    if (olcf->subscribe->retain == 0) {
        ngx_omnibus_conf_error(cf,
                               "omnibus zone \"%V\" has retain=0: subscribers "
                               "read the retain ring, give it retain=N",
                               &value[1]);
        return NGX_CONF_ERROR;
    }

    olcf->heartbeat = NGX_OMNIBUS_HEARTBEAT;
    olcf->max_buffer = NGX_OMNIBUS_SUB_BUFFER;

    for (i = 2; i < cf->args->nelts; i++) {
        if (ngx_strncmp(value[i].data, "heartbeat=", 10) == 0) {
            v.data = value[i].data + 10;
            v.len = value[i].len - 10;

            olcf->heartbeat = ngx_parse_time(&v, 0);
            if (olcf->heartbeat == (ngx_msec_t) NGX_ERROR
                || olcf->heartbeat == 0)
            {
                goto invalid;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "buffer=", 7) == 0) {
            v.data = value[i].data + 7;
            v.len = value[i].len - 7;

            olcf->max_buffer = ngx_parse_size(&v);
            if (olcf->max_buffer == (size_t) NGX_ERROR
                || olcf->max_buffer < NGX_OMNIBUS_SUB_BUFFER_MIN)
            {
                goto invalid;
            }

            continue;
        }

        goto invalid;
    }

    olcf->subscribe->subscribed = 1;
    clcf->handler = ngx_omnibus_subscribe_handler;

    return NGX_CONF_OK;

invalid:

    ngx_omnibus_conf_error(cf,
                           "invalid parameter \"%V\" (expected "
                           "heartbeat=TIME or buffer=SIZE of at least 4k)",
                           &value[i]);

    return NGX_CONF_ERROR;
}


char *
ngx_omnibus_dedup_directive(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_omnibus_loc_conf_t *olcf = conf;

    ngx_str_t  *value;

    if (olcf->dedup != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        olcf->dedup = NGX_OMNIBUS_DEDUP_OFF;

    } else if (ngx_strcmp(value[1].data, "key") == 0) {
        olcf->dedup = NGX_OMNIBUS_DEDUP_KEY;

    } else if (ngx_strcmp(value[1].data, "content") == 0) {
        olcf->dedup = NGX_OMNIBUS_DEDUP_CONTENT;

    } else {
        ngx_omnibus_conf_error(cf,
                               "invalid value \"%V\", expected "
                               "\"off\", \"key\" or \"content\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* omnibus_rate_limit KEY rate=Nr/s|Nr/m */

char *
ngx_omnibus_rate_limit_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_omnibus_loc_conf_t *olcf = conf;

    ngx_str_t                         *value, v;
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

    v.data = value[2].data + 5;
    v.len = value[2].len - 5;

    if (value[2].len < 5 || ngx_strncmp(value[2].data, "rate=", 5) != 0
        || ngx_omnibus_rate_parse(&v, &lc->rate) != NGX_OK)
    {
        ngx_omnibus_conf_error(cf,
                               "invalid rate \"%V\", expected rate=Nr/s or "
                               "rate=Nr/m with N from 1 to %d", &value[2],
                               NGX_OMNIBUS_RATE_MAX);
        return NGX_CONF_ERROR;
    }

    olcf->limit = lc;

    return NGX_CONF_OK;
}


char *
ngx_omnibus_message_size_check(ngx_conf_t *cf, void *post, void *data)
{
    size_t  *size = data;

    if (*size == 0 || *size > NGX_OMNIBUS_MESSAGE_MAX) {
        return "must be from 1 byte to 1024m";
    }

    return NGX_CONF_OK;
}
