
/*
 * Kafka's fallback file: NDJSON records kept while the cluster cannot
 * take them, appended by every worker, taken whole by a replay.
 */


#ifndef _NGX_OMNIBUS_KAFKA_FALLBACK_H_INCLUDED_
#define _NGX_OMNIBUS_KAFKA_FALLBACK_H_INCLUDED_


#include <ngx_omnibus_conn.h>


typedef struct {
    ngx_str_t                   path;        /* NUL-terminated */
    ngx_str_t                   taken;       /* path.replaying */
    ngx_fd_t                    fd;          /* worker: appending */
    ngx_fd_t                    taken_fd;    /* worker: replaying */
    ngx_event_t                 sync;        /* fdatasync, batched */
    ngx_log_t                  *log;
} ngx_omnibus_kafka_fallback_t;


ngx_omnibus_kafka_fallback_t *ngx_omnibus_kafka_fallback_conf(
    ngx_conf_t *cf, ngx_str_t *path);
ngx_int_t ngx_omnibus_kafka_fallback_append(
    ngx_omnibus_kafka_fallback_t *fb, u_char *line, size_t len);
ngx_int_t ngx_omnibus_kafka_fallback_take(ngx_omnibus_kafka_fallback_t *fb,
    ngx_pool_t *pool, ngx_str_t *records);
ngx_int_t ngx_omnibus_kafka_fallback_flush(ngx_omnibus_kafka_fallback_t *fb);
void ngx_omnibus_kafka_fallback_taken(ngx_omnibus_kafka_fallback_t *fb);
void ngx_omnibus_kafka_fallback_close(ngx_omnibus_kafka_fallback_t *fb);


#endif /* _NGX_OMNIBUS_KAFKA_FALLBACK_H_INCLUDED_ */
