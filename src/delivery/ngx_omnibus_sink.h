
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

    /* a worker starts: per-worker state of the route, may be NULL */
    ngx_int_t                 (*init_process)(ngx_omnibus_route_t *route,
                                              ngx_cycle_t *cycle);

    /* one attempt of the job; ends with ngx_omnibus_job_done() */
    void                      (*send)(ngx_omnibus_job_t *job);

    /* an attempt under way is abandoned: release it, report nothing */
    void                      (*cancel)(ngx_omnibus_job_t *job);

    /* a worker exits: close what the route keeps, may be NULL */
    void                      (*exit_process)(ngx_omnibus_route_t *route);
} ngx_omnibus_sink_t;


#endif /* _NGX_OMNIBUS_SINK_H_INCLUDED_ */
