
/*
 * The HTTP layer: the endpoints (publish, subscribe, admin, health,
 * metrics), the directives that set them up, and the JSON they answer.
 */


#ifndef _NGX_OMNIBUS_HTTP_H_INCLUDED_
#define _NGX_OMNIBUS_HTTP_H_INCLUDED_


#include <ngx_omnibus_core.h>
#include <ngx_omnibus_delivery.h>
#if (NGX_OMNIBUS_HAVE_KAFKA)
#include <ngx_omnibus_sink_kafka.h>
#include <ngx_omnibus_kafka_consume.h>
#endif
#include <ngx_http.h>


typedef struct {
    ngx_http_complex_value_t   *key;
    ngx_omnibus_rate_t          rate;
} ngx_omnibus_limit_conf_t;


typedef struct {
    ngx_omnibus_zone_t         *publish;
    ngx_omnibus_zone_t         *admin;
    ngx_omnibus_zone_t         *health;
    ngx_omnibus_zone_t         *subscribe;
    ngx_msec_t                  heartbeat;
    size_t                      max_buffer;
    ngx_flag_t                  ready;
    ngx_flag_t                  metrics;

    ngx_http_complex_value_t   *topic;
    ngx_http_complex_value_t   *priority;
    ngx_http_complex_value_t   *idempotency_key;
    ngx_uint_t                  dedup;
    size_t                      max_message_size;
    ngx_flag_t                  json;
    ngx_omnibus_limit_conf_t   *limit;
} ngx_omnibus_loc_conf_t;


/* output: a growing chain of buffers from the request pool */
typedef struct {
    ngx_http_request_t         *r;
    ngx_chain_t                *first;
    ngx_chain_t                *last;
    off_t                       len;
    ngx_int_t                   error;
} ngx_omnibus_out_t;


/* what one publish request carries from phase to phase */
typedef struct {
    ngx_omnibus_zone_t         *zone;
    ngx_str_t                   topic;
    ngx_str_t                   key;
    ngx_str_t                   ctype;
    ngx_uint_t                  priority;
    ngx_uint_t                  shard;

    u_char                     *body;        /* the collected body */
    size_t                      len;
    size_t                      size;
    unsigned                    collecting:1;
    unsigned                    too_large:1;
    unsigned                    batch:1;

    u_char                      id[NGX_OMNIBUS_ID_LEN];
    unsigned                    has_id:1;

    /* mode=sync: the answer, sent once the rows are committed */
    ngx_omnibus_store_wait_t    wait;
    ngx_omnibus_out_t          *out;
    ngx_uint_t                  status;

    /* omnibus_redis: a rate limit or a claim asked of the cluster */
    ngx_omnibus_cluster_wait_t  cluster;
    ngx_omnibus_offer_t         offer;       /* queued held, while claimed */
    unsigned                    claiming:1;
    unsigned                    claimed:1;   /* the identity is ours */
    unsigned                    pending:1;   /* ours until committed */
    unsigned                    cleanup:1;   /* registered */
} ngx_omnibus_ctx_t;


/* how each refusal of ngx_omnibus_rejection_e answers; code = label */
typedef struct {
    ngx_uint_t                  status;
    const char                 *code;
    time_t                      retry_after;
    const char                 *message;
} ngx_omnibus_rejection_t;


extern ngx_module_t                    ngx_omnibus_module;
extern const ngx_omnibus_rejection_t
    ngx_omnibus_rejections[NGX_OMNIBUS_REJ_MAX];


/* what parses a directive's parameters after its zone (cmd->post) */
typedef struct {
    char                     *(*parse)(ngx_conf_t *cf,
                                       ngx_omnibus_zone_t *zone,
                                       ngx_str_t *value, ngx_uint_t n);
} ngx_omnibus_zone_parser_t;


/* directives */
char *ngx_omnibus_zone_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_omnibus_route_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_omnibus_zone_params_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_omnibus_handler_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_omnibus_subscribe_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_omnibus_dedup_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_omnibus_rate_limit_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_omnibus_message_size_check(ngx_conf_t *cf, void *post, void *data);

/* responses */
void ngx_omnibus_out_init(ngx_omnibus_out_t *out, ngx_http_request_t *r);
void ngx_omnibus_out_printf(ngx_omnibus_out_t *out, const char *fmt, ...);
void ngx_omnibus_out_json_str(ngx_omnibus_out_t *out, u_char *p, size_t len);
void ngx_omnibus_out_payload(ngx_omnibus_out_t *out, ngx_str_t *payload,
    ngx_uint_t json);
ngx_int_t ngx_omnibus_out_send(ngx_omnibus_out_t *out, ngx_uint_t status,
    const char *ctype);
ngx_int_t ngx_omnibus_reply_error(ngx_http_request_t *r, ngx_uint_t status,
    const char *code, const char *message, time_t retry_after);
ngx_int_t ngx_omnibus_reply_not_allowed(ngx_http_request_t *r, char *allow);
ngx_int_t ngx_omnibus_discard_body(ngx_http_request_t *r, ngx_int_t *rc);
ngx_int_t ngx_omnibus_read_only(ngx_http_request_t *r, ngx_int_t *rc);

/* endpoints */
ngx_int_t ngx_omnibus_body_init(ngx_conf_t *cf);
ngx_int_t ngx_omnibus_publish_handler(ngx_http_request_t *r);
ngx_int_t ngx_omnibus_publish_variables(ngx_conf_t *cf);
ngx_int_t ngx_omnibus_admin_handler(ngx_http_request_t *r);
ngx_int_t ngx_omnibus_health_handler(ngx_http_request_t *r);
ngx_int_t ngx_omnibus_metrics_handler(ngx_http_request_t *r);
ngx_int_t ngx_omnibus_subscribe_handler(ngx_http_request_t *r);
void ngx_omnibus_subscribe_init_process(ngx_omnibus_zone_t *zone);
void ngx_omnibus_subscribe_exit_process(ngx_omnibus_zone_t *zone);


#endif /* _NGX_OMNIBUS_HTTP_H_INCLUDED_ */
