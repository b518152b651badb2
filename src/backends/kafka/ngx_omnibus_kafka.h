
/*
 * A librdkafka handle on the NGINX event loop: created in a worker, its
 * queue served when librdkafka writes to a pipe NGINX watches (and by a
 * slow timer, in case a wake-up is missed), its errors counted and its
 * logs sent to the error log.  Producers and consumers both use it.
 */


#ifndef _NGX_OMNIBUS_KAFKA_H_INCLUDED_
#define _NGX_OMNIBUS_KAFKA_H_INCLUDED_


#include <ngx_omnibus_conn.h>
#include <ngx_omnibus_sink_kafka.h>
#include <librdkafka/rdkafka.h>


/* why the cluster could not be reached, as counted in metrics */
typedef enum {
    NGX_OMNIBUS_KAFKA_TRANSPORT = 0,
    NGX_OMNIBUS_KAFKA_ALL_BROKERS_DOWN,
    NGX_OMNIBUS_KAFKA_AUTH,
    NGX_OMNIBUS_KAFKA_FATAL
} ngx_omnibus_kafka_reason_e;


#define NGX_OMNIBUS_KAFKA_TOPIC_MAX   249   /* Kafka's own limit */


/* librdkafka properties from the configuration, checked when parsed */
typedef struct {
    ngx_array_t                 values;      /* ngx_keyval_t, NUL-ended */
    rd_kafka_conf_t            *check;
} ngx_omnibus_kafka_settings_t;


typedef struct ngx_omnibus_kafka_s  ngx_omnibus_kafka_t;

struct ngx_omnibus_kafka_s {
    rd_kafka_t                 *rk;
    rd_kafka_queue_t           *queue;       /* the one served */
    ngx_connection_t           *wake;        /* read end of the pipe */
    ngx_socket_t                wake_fd;     /* write end, librdkafka's */
    ngx_event_t                 timer;       /* the slow safety poll */
    ngx_event_t                 fatal;       /* recreate, posted */
    ngx_log_t                  *log;
    ngx_str_t                  *name;        /* in logs */
    ngx_uint_t                  down;        /* every broker, as seen here */

    /* shared with the other workers, for metrics and status */
    ngx_atomic_t               *up;
    ngx_atomic_t               *failures;    /* [NGX_OMNIBUS_KAFKA_REASONS] */

    /* serve the queue until empty; a fatal error: recreate */
    void                      (*serve)(ngx_omnibus_kafka_t *k);
    void                      (*recreate)(ngx_omnibus_kafka_t *k);
    void                       *data;
};


ngx_int_t ngx_omnibus_kafka_settings_init(ngx_conf_t *cf,
    ngx_omnibus_kafka_settings_t *s);
ngx_int_t ngx_omnibus_kafka_set(ngx_conf_t *cf,
    ngx_omnibus_kafka_settings_t *s, char *name, ngx_str_t *value,
    ngx_str_t *param);
ngx_int_t ngx_omnibus_kafka_brokers_valid(ngx_str_t *brokers);
ngx_int_t ngx_omnibus_kafka_template_valid(ngx_str_t *tpl, ngx_uint_t bus);
size_t ngx_omnibus_kafka_expand(ngx_str_t *tpl, u_char *dst, size_t max,
    u_char *topic, size_t len, ngx_uint_t colons);
rd_kafka_conf_t *ngx_omnibus_kafka_conf(ngx_omnibus_kafka_t *k,
    ngx_omnibus_kafka_settings_t *s);
ngx_int_t ngx_omnibus_kafka_open(ngx_omnibus_kafka_t *k,
    rd_kafka_type_t type, rd_kafka_conf_t *conf);
void ngx_omnibus_kafka_close(ngx_omnibus_kafka_t *k);


#endif /* _NGX_OMNIBUS_KAFKA_H_INCLUDED_ */
