
/*
 * Cross-worker wake-up.  The master creates one nonblocking eventfd per
 * worker slot before fork; worker N listens on the Nth.  A publisher that
 * queues into a shard owned by another worker writes to the owner's fd,
 * unless a wake-up is already pending there: writes coalesce, and the
 * owner drains its shards when woken.
 */


#include <ngx_omnibus_core.h>

#include <sys/eventfd.h>


static void ngx_omnibus_notify_cleanup(void *data);
static void ngx_omnibus_notify_read(ngx_event_t *rev);


static int                  *ngx_omnibus_wake_fds;
static ngx_connection_t     *ngx_omnibus_wake_conn;
static ngx_omnibus_wake_pt   ngx_omnibus_woken;


ngx_int_t
ngx_omnibus_notify_init_module(ngx_cycle_t *cycle,
    ngx_omnibus_main_conf_t *omcf)
{
    ngx_uint_t          i;
    ngx_pool_cleanup_t  *cln;

    omcf->nwake = ngx_omnibus_workers;
    omcf->wake_fds = ngx_palloc(cycle->pool, omcf->nwake * sizeof(int));
    if (omcf->wake_fds == NULL) {
        return NGX_ERROR;
    }

    cln = ngx_pool_cleanup_add(cycle->pool, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < omcf->nwake; i++) {
        omcf->wake_fds[i] = -1;
    }

    cln->handler = ngx_omnibus_notify_cleanup;
    cln->data = omcf;

    for (i = 0; i < omcf->nwake; i++) {
        omcf->wake_fds[i] = eventfd(0, EFD_NONBLOCK|EFD_CLOEXEC);

        if (omcf->wake_fds[i] == -1) {
            ngx_log_error(NGX_LOG_EMERG, cycle->log, ngx_errno,
                          "omnibus: eventfd() failed");
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static void
ngx_omnibus_notify_cleanup(void *data)
{
    ngx_omnibus_main_conf_t *omcf = data;

    ngx_uint_t  i;

    for (i = 0; i < omcf->nwake; i++) {
        if (omcf->wake_fds[i] != -1) {
            (void) close(omcf->wake_fds[i]);
            omcf->wake_fds[i] = -1;
        }
    }
}


ngx_int_t
ngx_omnibus_notify_init_process(ngx_cycle_t *cycle,
    ngx_omnibus_main_conf_t *omcf, ngx_omnibus_wake_pt woken)
{
    ngx_connection_t  *c;

    ngx_omnibus_wake_fds = omcf->wake_fds;
    ngx_omnibus_woken = woken;

    if (ngx_worker >= omcf->nwake) {
        return NGX_OK;
    }

    c = ngx_get_connection(omcf->wake_fds[ngx_worker], cycle->log);
    if (c == NULL) {
        return NGX_ERROR;
    }

    c->read->handler = ngx_omnibus_notify_read;
    c->read->log = cycle->log;
    c->log = cycle->log;

    if (ngx_handle_read_event(c->read, 0) != NGX_OK) {
        ngx_free_connection(c);
        return NGX_ERROR;
    }

    ngx_omnibus_wake_conn = c;

    return NGX_OK;
}


void
ngx_omnibus_notify_exit_process(void)
{
    if (ngx_omnibus_wake_conn) {
        ngx_close_connection(ngx_omnibus_wake_conn);
        ngx_omnibus_wake_conn = NULL;
    }
}


void
ngx_omnibus_notify(ngx_omnibus_zone_t *zone, ngx_uint_t shard)
{
    ngx_uint_t  owner;

    owner = ngx_omnibus_shard_owner(shard);

    if (owner == ngx_worker) {
        ngx_post_event(&zone->dispatch, &ngx_posted_events);
        return;
    }

    ngx_omnibus_notify_worker(zone, owner);
}


void
ngx_omnibus_notify_worker(ngx_omnibus_zone_t *zone, ngx_uint_t owner)
{
    uint64_t       one;
    ngx_atomic_t  *pending;

    if (owner >= ngx_omnibus_workers) {
        return;
    }

    if (owner < NGX_OMNIBUS_WAKE_SLOTS) {
        pending = &zone->sh->wake[owner];

        if (*pending || !ngx_atomic_cmp_set(pending, 0, 1)) {
            return;
        }
    }

    one = 1;

    if (write(ngx_omnibus_wake_fds[owner], &one, sizeof(one)) == -1
        && ngx_errno != NGX_EAGAIN)
    {
        ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, ngx_errno,
                      "omnibus: write() to the wake-up eventfd of "
                      "worker %ui failed", owner);
    }
}


/* a ring change moved topics between shards: everyone looks again */

void
ngx_omnibus_notify_all(ngx_omnibus_zone_t *zone)
{
    ngx_uint_t  w;

    for (w = 0; w < ngx_omnibus_workers; w++) {
        if (w == ngx_worker) {
            ngx_post_event(&zone->dispatch, &ngx_posted_events);

        } else {
            ngx_omnibus_notify_worker(zone, w);
        }
    }
}


/*
 * Called by the owner once it has drained: later publishes wake it.  The
 * caller looks at the queues and the retain rings again afterwards, and
 * a locked instruction, not a plain store, keeps those reads from being
 * done before the flag is seen down by the other workers.
 */

void
ngx_omnibus_notify_taken(ngx_omnibus_zone_t *zone)
{
    if (ngx_worker < NGX_OMNIBUS_WAKE_SLOTS) {
        (void) ngx_atomic_cmp_set(&zone->sh->wake[ngx_worker], 1, 0);
    }
}


static void
ngx_omnibus_notify_read(ngx_event_t *rev)
{
    uint64_t  n;

    /* an eventfd read returns and resets the whole count */

    while (read(ngx_omnibus_wake_conn->fd, &n, sizeof(n)) == sizeof(n)) {
        /* void */
    }

    ngx_omnibus_woken();
}
