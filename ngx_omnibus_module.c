
/*
 * ngx_omnibus_module: a sharded message bus inside NGINX.
 *
 * This file is the top: the module definition, its directives, and the
 * process hooks that start and stop the layers below in order.  Data
 * flow: publish (http) -> queue (core, shared memory) -> notify the
 * owner worker -> dispatch and jobs (delivery) -> sinks (backends) and
 * the fan-out to subscribers (http).
 */


#include <ngx_omnibus.h>


static ngx_int_t ngx_omnibus_postconfiguration(ngx_conf_t *cf);
static void *ngx_omnibus_create_main_conf(ngx_conf_t *cf);
static void *ngx_omnibus_create_loc_conf(ngx_conf_t *cf);
static char *ngx_omnibus_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static ngx_int_t ngx_omnibus_init_module(ngx_cycle_t *cycle);
static ngx_int_t ngx_omnibus_init_process(ngx_cycle_t *cycle);
static void ngx_omnibus_exit_process(ngx_cycle_t *cycle);
static void ngx_omnibus_exit_master(ngx_cycle_t *cycle);


/* the default omnibus_max_message_size */
#define NGX_OMNIBUS_MESSAGE_SIZE  (1024 * 1024)


static ngx_conf_post_t  ngx_omnibus_message_size_post = {
    ngx_omnibus_message_size_check
};


/* the sinks a route's URL scheme picks from, one header each */
static ngx_omnibus_sink_t  *ngx_omnibus_sinks[] = {
    &ngx_omnibus_sink_http,
#if (NGX_OMNIBUS_HAVE_KAFKA)
    &ngx_omnibus_sink_kafka,
#endif
    NULL
};


static ngx_omnibus_zone_parser_t  ngx_omnibus_autoscale_parser = {
    ngx_omnibus_scale_parse
};

#if (NGX_OMNIBUS_HAVE_KAFKA)
static ngx_omnibus_zone_parser_t  ngx_omnibus_kafka_consume_parser = {
    ngx_omnibus_kafka_consume_parse
};
#endif

#if (NGX_OMNIBUS_HAVE_PG)
static ngx_omnibus_zone_parser_t  ngx_omnibus_store_parser = {
    ngx_omnibus_pg_store_parse
};
#endif

#if (NGX_OMNIBUS_HAVE_REDIS)
static ngx_omnibus_zone_parser_t  ngx_omnibus_redis_parser = {
    ngx_omnibus_redis_parse
};
#endif


static ngx_command_t  ngx_omnibus_commands[] = {

    { ngx_string("omnibus_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_omnibus_zone_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("omnibus_route"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_2MORE,
      ngx_omnibus_route_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      ngx_omnibus_sinks },

    { ngx_string("omnibus_autoscale"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_omnibus_zone_params_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      &ngx_omnibus_autoscale_parser },

#if (NGX_OMNIBUS_HAVE_KAFKA)

    { ngx_string("omnibus_kafka_consume"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_2MORE,
      ngx_omnibus_zone_params_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      &ngx_omnibus_kafka_consume_parser },

#endif

#if (NGX_OMNIBUS_HAVE_PG)

    { ngx_string("omnibus_store"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_2MORE,
      ngx_omnibus_zone_params_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      &ngx_omnibus_store_parser },

#endif

#if (NGX_OMNIBUS_HAVE_REDIS)

    { ngx_string("omnibus_redis"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_2MORE,
      ngx_omnibus_zone_params_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      &ngx_omnibus_redis_parser },

#endif

    { ngx_string("omnibus_node"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_omnibus_main_conf_t, node),
      NULL },

    { ngx_string("omnibus_subscribe"),
      NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_omnibus_subscribe_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("omnibus_publish"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_omnibus_handler_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_omnibus_loc_conf_t, publish),
      NULL },

    { ngx_string("omnibus_admin"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_omnibus_handler_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_omnibus_loc_conf_t, admin),
      NULL },

    { ngx_string("omnibus_health"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE12,
      ngx_omnibus_handler_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_omnibus_loc_conf_t, health),
      NULL },

    { ngx_string("omnibus_metrics"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_omnibus_handler_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_omnibus_loc_conf_t, metrics),
      NULL },

    { ngx_string("omnibus_topic"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_omnibus_loc_conf_t, topic),
      NULL },

    { ngx_string("omnibus_priority"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_omnibus_loc_conf_t, priority),
      NULL },

    { ngx_string("omnibus_idempotency_key"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_omnibus_loc_conf_t, idempotency_key),
      NULL },

    { ngx_string("omnibus_dedup"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_omnibus_dedup_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("omnibus_max_message_size"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_omnibus_loc_conf_t, max_message_size),
      &ngx_omnibus_message_size_post },

    { ngx_string("omnibus_json"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_omnibus_loc_conf_t, json),
      NULL },

    { ngx_string("omnibus_rate_limit"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE2,
      ngx_omnibus_rate_limit_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_omnibus_module_ctx = {
    NULL,                                  /* preconfiguration */
    ngx_omnibus_postconfiguration,         /* postconfiguration */

    ngx_omnibus_create_main_conf,          /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_omnibus_create_loc_conf,           /* create location configuration */
    ngx_omnibus_merge_loc_conf             /* merge location configuration */
};


ngx_module_t  ngx_omnibus_module = {
    NGX_MODULE_V1,
    &ngx_omnibus_module_ctx,               /* module context */
    ngx_omnibus_commands,                  /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    ngx_omnibus_init_module,               /* init module */
    ngx_omnibus_init_process,              /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_omnibus_exit_process,              /* exit process */
    ngx_omnibus_exit_master,               /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_int_t
ngx_omnibus_postconfiguration(ngx_conf_t *cf)
{
    if (ngx_omnibus_publish_variables(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_omnibus_body_init(cf);
}


static void *
ngx_omnibus_create_main_conf(ngx_conf_t *cf)
{
    ngx_omnibus_main_conf_t  *omcf;

    omcf = ngx_pcalloc(cf->pool, sizeof(ngx_omnibus_main_conf_t));
    if (omcf == NULL) {
        return NULL;
    }

    if (ngx_array_init(&omcf->zones, cf->pool, 2,
                       sizeof(ngx_omnibus_zone_t *))
        != NGX_OK)
    {
        return NULL;
    }

    return omcf;
}


static void *
ngx_omnibus_create_loc_conf(ngx_conf_t *cf)
{
    ngx_omnibus_loc_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_omnibus_loc_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     conf->publish = NULL;
     *     conf->admin = NULL;
     *     conf->health = NULL;
     *     conf->topic = NULL;
     *     conf->priority = NULL;
     *     conf->idempotency_key = NULL;
     */

    conf->ready = NGX_CONF_UNSET;
    conf->metrics = NGX_CONF_UNSET;
    conf->dedup = NGX_CONF_UNSET_UINT;
    conf->max_message_size = NGX_CONF_UNSET_SIZE;
    conf->json = NGX_CONF_UNSET;
    conf->limit = NGX_CONF_UNSET_PTR;

    return conf;
}


static ngx_http_complex_value_t *
ngx_omnibus_default_value(ngx_conf_t *cf, char *value)
{
    ngx_str_t                          v;
    ngx_http_complex_value_t          *cv;
    ngx_http_compile_complex_value_t   ccv;

    cv = ngx_palloc(cf->pool, sizeof(ngx_http_complex_value_t));
    if (cv == NULL) {
        return NULL;
    }

    v.data = (u_char *) value;
    v.len = ngx_strlen(value);

    ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));

    ccv.cf = cf;
    ccv.value = &v;
    ccv.complex_value = cv;

    if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
        return NULL;
    }

    return cv;
}


static char *
ngx_omnibus_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_omnibus_loc_conf_t *prev = parent;
    ngx_omnibus_loc_conf_t *conf = child;

    if (conf->topic == NULL) {
        conf->topic = prev->topic;
    }

    if (conf->priority == NULL) {
        conf->priority = prev->priority;
    }

    if (conf->idempotency_key == NULL) {
        conf->idempotency_key = prev->idempotency_key;
    }

    ngx_conf_merge_uint_value(conf->dedup, prev->dedup,
                              NGX_OMNIBUS_DEDUP_KEY);
    ngx_conf_merge_size_value(conf->max_message_size,
                              prev->max_message_size,
                              NGX_OMNIBUS_MESSAGE_SIZE);
    ngx_conf_merge_value(conf->json, prev->json, 1);
    ngx_conf_merge_ptr_value(conf->limit, prev->limit, NULL);
    ngx_conf_merge_value(conf->ready, prev->ready, 0);
    ngx_conf_merge_value(conf->metrics, prev->metrics, 0);

    if (conf->publish == NULL) {
        return NGX_CONF_OK;
    }

    /* defaults are compiled once, where a publish location needs them */

    if (conf->priority == NULL) {
        conf->priority = ngx_omnibus_default_value(cf, "$http_x_priority");
        if (conf->priority == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    if (conf->idempotency_key == NULL) {
        conf->idempotency_key = ngx_omnibus_default_value(cf,
                                                    "$http_idempotency_key");
        if (conf->idempotency_key == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_omnibus_init_module(ngx_cycle_t *cycle)
{
    ngx_uint_t                i;
    ngx_core_conf_t          *ccf;
    ngx_omnibus_zone_t      **zones;
    ngx_omnibus_main_conf_t  *omcf;

    omcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_omnibus_module);
    if (omcf == NULL || omcf->zones.nelts == 0) {
        return NGX_OK;
    }

    /* past the point where loading this configuration can fail */

    zones = omcf->zones.elts;

    for (i = 0; i < omcf->zones.nelts; i++) {
        ngx_omnibus_zone_commit(zones[i]);
    }

    ccf = (ngx_core_conf_t *) ngx_get_conf(cycle->conf_ctx, ngx_core_module);

    ngx_omnibus_workers = ccf->master ? (ngx_uint_t) ccf->worker_processes
                                      : 1;

    /* wake-up channels must exist before fork to be shared */
    return ngx_omnibus_notify_init_module(cycle, omcf);
}


static ngx_int_t
ngx_omnibus_init_process(ngx_cycle_t *cycle)
{
    ngx_uint_t                i;
    ngx_omnibus_zone_t      **zones;
    ngx_omnibus_main_conf_t  *omcf;

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    omcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_omnibus_module);
    if (omcf == NULL || omcf->zones.nelts == 0) {
        return NGX_OK;
    }

    zones = omcf->zones.elts;

    for (i = 0; i < omcf->zones.nelts; i++) {
        (void) ngx_atomic_fetch_add(&zones[i]->sh->worker_starts, 1);
        ngx_omnibus_subscribe_init_process(zones[i]);
    }

    if (ngx_omnibus_dispatch_init_process(cycle, omcf) != NGX_OK) {
        return NGX_ERROR;
    }

    /* the node names this instance to the others; the pod's name */

    if (omcf->node.len == 0) {
        omcf->node = cycle->hostname;
    }

#if (NGX_OMNIBUS_HAVE_REDIS)

    for (i = 0; i < omcf->zones.nelts; i++) {
        if (ngx_omnibus_redis_init_process(zones[i], &omcf->node, cycle)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

#endif

#if (NGX_OMNIBUS_HAVE_PG)

    for (i = 0; i < omcf->zones.nelts; i++) {
        if (ngx_omnibus_pg_store_init_process(zones[i], &omcf->node, cycle)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

#endif

#if (NGX_OMNIBUS_HAVE_KAFKA)

    /* inputs last: what they queue is dispatched */

    for (i = 0; i < omcf->zones.nelts; i++) {
        if (ngx_omnibus_kafka_consume_init_process(zones[i], cycle)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

#endif

    return NGX_OK;
}


/*
 * Inputs end first, then subscribers, then deliveries, then the wake-up
 * channel.
 */

static void
ngx_omnibus_exit_process(ngx_cycle_t *cycle)
{
    ngx_uint_t                i;
    ngx_omnibus_zone_t      **zones;
    ngx_omnibus_main_conf_t  *omcf;

    omcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_omnibus_module);
    if (omcf == NULL || omcf->zones.nelts == 0) {
        return;
    }

    zones = omcf->zones.elts;

#if (NGX_OMNIBUS_HAVE_KAFKA)

    for (i = 0; i < omcf->zones.nelts; i++) {
        ngx_omnibus_kafka_consume_exit_process(zones[i]);
    }

#endif

    for (i = 0; i < omcf->zones.nelts; i++) {
        if (zones[i]->cursor) {
            ngx_omnibus_subscribe_exit_process(zones[i]);
        }
    }

    ngx_omnibus_dispatch_exit_process();

#if (NGX_OMNIBUS_HAVE_REDIS)

    for (i = 0; i < omcf->zones.nelts; i++) {
        ngx_omnibus_redis_exit_process(zones[i]);
    }

#endif

#if (NGX_OMNIBUS_HAVE_PG)

    /* last: what deliveries finished above is among the rows left */

    for (i = 0; i < omcf->zones.nelts; i++) {
        ngx_omnibus_pg_store_exit_process(zones[i]);
    }

#endif
}


/* the zone ends with the master: say what it still held */

static void
ngx_omnibus_exit_master(ngx_cycle_t *cycle)
{
    ngx_uint_t                i, s, queued, inflight, level;
    ngx_omnibus_sh_t         *sh;
    ngx_omnibus_zone_t      **zones;
    ngx_omnibus_main_conf_t  *omcf;

    omcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_omnibus_module);
    if (omcf == NULL) {
        return;
    }

    zones = omcf->zones.elts;

    for (i = 0; i < omcf->zones.nelts; i++) {
        sh = zones[i]->sh;

        if (sh == NULL) {
            continue;
        }

        queued = 0;
        inflight = 0;

        for (s = 0; s < sh->cap_shards; s++) {
            queued += sh->shards[s].queued;
            inflight += sh->shards[s].ninflight;
        }

        level = (queued || inflight || sh->dlq_size) ? NGX_LOG_WARN
                                                     : NGX_LOG_NOTICE;

        ngx_log_error(level, cycle->log, 0,
                      "omnibus zone \"%V\" ends with %ui message(s) queued, "
                      "%ui in flight and %ui dead letter(s)",
                      &zones[i]->name, queued, inflight, sh->dlq_size);
    }
}
