
/*
 * What every subscriber shares, whatever its protocol: its place in the
 * zone's fan-out, the output it has not sent yet (bounded: a client that
 * does not read is dropped), and ending it from our own events.
 */


#include <ngx_omnibus_subscribe.h>


/* output of a long-lived response: buffers of this size, reused */
#define NGX_OMNIBUS_SUB_BUF       4096


/*
 * An output buffer: its own memory (from start to end, for what only
 * this stream sends), or a span of a fan-out round's events (pos to
 * last, a reference on them, not written to).
 */
typedef struct {
    ngx_buf_t                   buf;
    ngx_omnibus_sub_batch_t    *batch;
} ngx_omnibus_sub_buf_t;


static ngx_chain_t *ngx_omnibus_sub_get_buf(ngx_omnibus_sub_t *sub);
static void ngx_omnibus_sub_unshare(ngx_chain_t *cl, ngx_chain_t *end);
static void ngx_omnibus_sub_cleanup(void *data);


/*
 * The subscriber joins the fan-out before it reads the retain rings, so
 * that nothing falls in between.  The request's context is the
 * subscriber: in a subscribe location, not a publish one.
 */

ngx_int_t
ngx_omnibus_sub_register(ngx_omnibus_sub_t *sub)
{
    ngx_pool_cleanup_t  *cln;

    cln = ngx_pool_cleanup_add(sub->r->pool, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    cln->handler = ngx_omnibus_sub_cleanup;
    cln->data = sub;

    ngx_http_set_ctx(sub->r, sub, ngx_omnibus_module);

    ngx_omnibus_fanout_join(sub->zone, &sub->queue);
    sub->live = 1;

    return NGX_OK;
}


void
ngx_omnibus_sub_unregister(ngx_omnibus_sub_t *sub)
{
    if (!sub->live) {
        return;
    }

    sub->live = 0;
    ngx_omnibus_fanout_leave(sub->zone, &sub->queue);
}


ngx_int_t
ngx_omnibus_sub_append(ngx_omnibus_sub_t *sub, u_char *p, size_t len)
{
    size_t        n;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    while (len) {
        cl = NULL;

        if (sub->last != &sub->out) {
            cl = (ngx_chain_t *) ((u_char *) sub->last
                                  - offsetof(ngx_chain_t, next));
            if (!cl->buf->temporary || cl->buf->last == cl->buf->end) {
                cl = NULL;
            }
        }

        if (cl == NULL) {
            cl = ngx_omnibus_sub_get_buf(sub);
            if (cl == NULL) {
                return NGX_ERROR;
            }

            b = cl->buf;

            if (b->start == NULL) {
                b->start = ngx_palloc(sub->r->pool, NGX_OMNIBUS_SUB_BUF);
                if (b->start == NULL) {
                    return NGX_ERROR;
                }

                b->end = b->start + NGX_OMNIBUS_SUB_BUF;
            }

            b->pos = b->start;
            b->last = b->start;
            b->temporary = 1;

            *sub->last = cl;
            sub->last = &cl->next;
        }

        b = cl->buf;
        n = ngx_min(len, (size_t) (b->end - b->last));
        b->last = ngx_cpymem(b->last, p, n);
        p += n;
        len -= n;
    }

    return NGX_OK;
}


/*
 * Event i of a round, not copied: next to the one before when it can.  A
 * stream that has not sent what it had gets a copy instead: a reference
 * would keep the whole round alive for the few bytes of it that match,
 * round after round, for as long as its client does not read.
 */

ngx_int_t
ngx_omnibus_sub_share(ngx_omnibus_sub_t *sub, ngx_omnibus_sub_batch_t *batch,
    ngx_uint_t i)
{
    ngx_buf_t              *b;
    ngx_chain_t            *cl;
    ngx_omnibus_sub_buf_t  *sb;

    if (sub->busy) {
        return ngx_omnibus_sub_append(sub, batch->data + batch->off[i],
                                      batch->off[i + 1] - batch->off[i]);
    }

    if (sub->last != &sub->out) {
        cl = (ngx_chain_t *) ((u_char *) sub->last
                              - offsetof(ngx_chain_t, next));
        sb = (ngx_omnibus_sub_buf_t *) cl->buf;

        if (sb->batch == batch
            && sb->buf.last == batch->data + batch->off[i])
        {
            sb->buf.last = batch->data + batch->off[i + 1];
            return NGX_OK;
        }
    }

    cl = ngx_omnibus_sub_get_buf(sub);
    if (cl == NULL) {
        return NGX_ERROR;
    }

    b = cl->buf;
    b->pos = batch->data + batch->off[i];
    b->last = batch->data + batch->off[i + 1];
    b->temporary = 0;
    b->memory = 1;

    sb = (ngx_omnibus_sub_buf_t *) b;
    sb->batch = batch;
    batch->refs++;

    *sub->last = cl;
    sub->last = &cl->next;

    return NGX_OK;
}


static ngx_chain_t *
ngx_omnibus_sub_get_buf(ngx_omnibus_sub_t *sub)
{
    ngx_chain_t            *cl;
    ngx_omnibus_sub_buf_t  *sb;

    if (sub->free) {
        cl = sub->free;
        sub->free = cl->next;

    } else {
        cl = ngx_alloc_chain_link(sub->r->pool);
        if (cl == NULL) {
            return NULL;
        }

        sb = ngx_pcalloc(sub->r->pool, sizeof(ngx_omnibus_sub_buf_t));
        if (sb == NULL) {
            return NULL;
        }

        sb->buf.tag = (ngx_buf_tag_t) &ngx_omnibus_module;
        cl->buf = &sb->buf;
    }

    cl->next = NULL;
    cl->buf->memory = 0;
    cl->buf->flush = 0;

    return cl;
}


void
ngx_omnibus_sub_release(ngx_omnibus_sub_batch_t *batch)
{
    if (--batch->refs == 0) {
        ngx_free(batch);
    }
}


/* buffers sent (or never to be): their references on rounds go */

static void
ngx_omnibus_sub_unshare(ngx_chain_t *cl, ngx_chain_t *end)
{
    ngx_omnibus_sub_buf_t  *sb;

    for ( /* void */ ; cl != end; cl = cl->next) {
        sb = (ngx_omnibus_sub_buf_t *) cl->buf;

        if (sb->batch) {
            ngx_omnibus_sub_release(sb->batch);
            sb->batch = NULL;
            sb->buf.memory = 0;
        }
    }
}


ngx_int_t
ngx_omnibus_sub_flush(ngx_omnibus_sub_t *sub)
{
    off_t         busy;
    ngx_int_t     rc;
    ngx_chain_t  *cl, *free;

    if (sub->out) {
        cl = (ngx_chain_t *) ((u_char *) sub->last
                              - offsetof(ngx_chain_t, next));
        cl->buf->flush = 1;
    }

    rc = ngx_http_output_filter(sub->r, sub->out);

    /* what was sent goes to the head of the free list */

    free = sub->free;

    ngx_chain_update_chains(sub->r->pool, &sub->free, &sub->busy, &sub->out,
                            (ngx_buf_tag_t) &ngx_omnibus_module);
    sub->last = &sub->out;

    ngx_omnibus_sub_unshare(sub->free, free);

    if (rc == NGX_ERROR) {
        return NGX_ERROR;
    }

    /* a client that does not read cannot make us buffer without end */

    busy = 0;

    for (cl = sub->busy; cl; cl = cl->next) {
        busy += cl->buf->last - cl->buf->pos;
    }

    if ((size_t) busy > sub->max_buffer) {
        (void) ngx_atomic_fetch_add(&sub->zone->sh->slow_dropped, 1);

        /* the client's doing, as NGINX logs client timeouts */
        ngx_log_error(NGX_LOG_INFO, sub->r->connection->log, 0,
                      "omnibus subscriber dropped: %O bytes unsent, "
                      "more than its buffer of %uz", busy, sub->max_buffer);
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * From our own events (fan-out, timers) rather than the connection's:
 * a termination is posted to the connection, and a client that neither
 * reads nor writes would never run it, so run it now.
 */

void
ngx_omnibus_sub_finalize(ngx_http_request_t *r, ngx_int_t rc)
{
    ngx_connection_t  *c;

    c = r->connection;

    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}


/* the client read some of a stream: send more */

void
ngx_omnibus_sub_write_handler(ngx_http_request_t *r)
{
    ngx_omnibus_sub_t  *sub;

    sub = ngx_http_get_module_ctx(r, ngx_omnibus_module);

    if (sub == NULL || ngx_omnibus_sub_flush(sub) != NGX_OK) {
        ngx_http_finalize_request(r, NGX_ERROR);
    }
}


static void
ngx_omnibus_sub_cleanup(void *data)
{
    ngx_omnibus_sub_t *sub = data;

    ngx_omnibus_sub_unregister(sub);

    if (sub->timer.timer_set) {
        ngx_del_timer(&sub->timer);
    }

    ngx_omnibus_sub_unshare(sub->out, NULL);
    ngx_omnibus_sub_unshare(sub->busy, NULL);
}
