
/*
 * The sink interface.  A route's URL scheme picks its sink from the table
 * the module gives omnibus_route; the sink parses the URL at
 * configuration time into a conf of its own (route->conf), makes one
 * attempt of a job at a time on the event loop, and reports back with
 * ngx_omnibus_job_done().  The dispatcher knows sinks only by this table.
 */


#ifndef _NGX_OMNIBUS_SINK_H_INCLUDED_
#define _NGX_OMNIBUS_SINK_H_INCLUDED_


typedef enum {
    NGX_OMNIBUS_DELIVERED = 0,
    NGX_OMNIBUS_RETRY,                       /* 408, 429, 5xx, I/O */
    NGX_OMNIBUS_PERMANENT                    /* other 4xx */
} ngx_omnibus_result_e;


typedef struct {
    /* the URL scheme, also the sink's name in logs and status */
    ngx_str_t                   name;

    /* configuration: the route's URL, "name://..." */
    char                     *(*parse)(ngx_conf_t *cf,
                                       ngx_omnibus_route_t *route,
                                       ngx_str_t *url);

    /*
     * a route parameter the route does not know: NGX_OK taken, NGX_ERROR
     * a bad value (logged), NGX_DECLINED not the sink's either; may be
     * NULL.  params lists them for the error message.
     */
    ngx_int_t                 (*param)(ngx_conf_t *cf,
                                       ngx_omnibus_route_t *route,
                                       ngx_str_t *value);
    const char                 *params;

    /* a worker starts: per-worker state of the route, may be NULL */
    ngx_int_t                 (*init_process)(ngx_omnibus_route_t *route,
                                              ngx_cycle_t *cycle);

    /* one attempt of the job; ends with ngx_omnibus_job_done() */
    void                      (*send)(ngx_omnibus_job_t *job);

    /* an attempt under way is abandoned: release it, report nothing */
    void                      (*cancel)(ngx_omnibus_job_t *job);

    /*
     * keep the record elsewhere (Kafka's fallback file) while the breaker
     * holds it back or when the retries gave up: NGX_OK kept (it counts
     * as diverted, not dead), NGX_DECLINED nowhere to keep it, NGX_ERROR
     * failed; may be NULL
     */
    ngx_int_t                 (*divert)(ngx_omnibus_job_t *job);

    /* a worker exits: close what the route keeps, may be NULL */
    void                      (*exit_process)(ngx_omnibus_route_t *route);
} ngx_omnibus_sink_t;


#endif /* _NGX_OMNIBUS_SINK_H_INCLUDED_ */
