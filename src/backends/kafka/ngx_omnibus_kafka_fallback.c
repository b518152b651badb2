
/*
 * The fallback file.  Workers append whole lines under flock(), each
 * line with one write(), and fdatasync() in batches a moment later.
 *
 * A replay takes the file away from its name (link to path.replaying,
 * then unlink) so that appends go on into a new file; a writer that
 * still holds the old one notices under its lock (the name points
 * elsewhere now) and reopens.  Only one replay at a time, in any
 * process: it holds an open file description lock on the taken file,
 * which is not flock()'s, so writers never wait for a replay.  A replay
 * that died leaves path.replaying behind: the next one takes it first.
 */


#include <ngx_omnibus_kafka_fallback.h>
#include <sys/file.h>


#define NGX_OMNIBUS_FALLBACK_SYNC  100       /* ms: fdatasync batching */


static void ngx_omnibus_kafka_fallback_sync(ngx_event_t *ev);
static ngx_int_t ngx_omnibus_kafka_fallback_open_taken(
    ngx_omnibus_kafka_fallback_t *fb);


ngx_omnibus_kafka_fallback_t *
ngx_omnibus_kafka_fallback_conf(ngx_conf_t *cf, ngx_str_t *path)
{
    u_char                        *p;
    ngx_str_t                      dir;
    ngx_file_info_t                fi;
    ngx_omnibus_kafka_fallback_t  *fb;

    fb = ngx_pcalloc(cf->pool, sizeof(ngx_omnibus_kafka_fallback_t));
    if (fb == NULL) {
        return NULL;
    }

    fb->path = *path;

    if (ngx_conf_full_name(cf->cycle, &fb->path, 0) != NGX_OK) {
        return NULL;
    }

    /* NUL-terminated copies, the second one with its suffix */

    p = ngx_pnalloc(cf->pool, 2 * fb->path.len + sizeof(".replaying") + 1);
    if (p == NULL) {
        return NULL;
    }

    fb->taken.data = ngx_cpymem(p, fb->path.data, fb->path.len);
    *fb->taken.data++ = '\0';
    fb->path.data = p;

    p = ngx_cpymem(fb->taken.data, fb->path.data, fb->path.len);
    (void) ngx_cpystrn(p, (u_char *) ".replaying", sizeof(".replaying"));
    fb->taken.len = fb->path.len + sizeof(".replaying") - 1;

    /* the directory must be there; the file comes when needed */

    dir.data = fb->path.data;
    dir.len = fb->path.len;

    while (dir.len && dir.data[dir.len - 1] != '/') {
        dir.len--;
    }

    if (dir.len > 1) {
        dir.data[dir.len - 1] = '\0';

        if (ngx_file_info(dir.data, &fi) == NGX_FILE_ERROR
            || !ngx_is_dir(&fi))
        {
            dir.data[dir.len - 1] = '/';
            return NULL;
        }

        dir.data[dir.len - 1] = '/';
    }

    fb->fd = NGX_INVALID_FILE;
    fb->taken_fd = NGX_INVALID_FILE;

    return fb;
}


ngx_int_t
ngx_omnibus_kafka_fallback_append(ngx_omnibus_kafka_fallback_t *fb,
    u_char *line, size_t len)
{
    off_t            end;
    ssize_t          n;
    ngx_uint_t       tries;
    struct stat      named, held;

    for (tries = 0; tries < 3; tries++) {

        if (fb->fd == NGX_INVALID_FILE) {
            fb->fd = open((char *) fb->path.data,
                          O_WRONLY|O_APPEND|O_CREAT|O_CLOEXEC, 0640);

            if (fb->fd == NGX_INVALID_FILE) {
                ngx_log_error(NGX_LOG_ERR, fb->log, ngx_errno,
                              "omnibus kafka fallback: open(\"%s\") failed",
                              fb->path.data);
                return NGX_ERROR;
            }
        }

        if (flock(fb->fd, LOCK_EX) == -1) {
            goto failed;
        }

        /* a replay took this file since we opened it: a new one */

        if (stat((char *) fb->path.data, &named) == -1
            || fstat(fb->fd, &held) == -1
            || named.st_ino != held.st_ino || named.st_dev != held.st_dev)
        {
            (void) close(fb->fd);
            fb->fd = NGX_INVALID_FILE;
            continue;
        }

        end = lseek(fb->fd, 0, SEEK_END);
        n = write(fb->fd, line, len);

        if (n != (ssize_t) len) {
            /* no half line for a replay to choke on */
            if (n > 0 && end != -1) {
                (void) ftruncate(fb->fd, end);
            }

            ngx_log_error(NGX_LOG_ERR, fb->log, n == -1 ? ngx_errno : 0,
                          "omnibus kafka fallback: write to \"%s\" failed",
                          fb->path.data);
            (void) flock(fb->fd, LOCK_UN);
            return NGX_ERROR;
        }

        (void) flock(fb->fd, LOCK_UN);

        if (!fb->sync.timer_set) {
            fb->sync.handler = ngx_omnibus_kafka_fallback_sync;
            fb->sync.data = fb;
            fb->sync.log = fb->log;
            fb->sync.cancelable = 1;
            ngx_add_timer(&fb->sync, NGX_OMNIBUS_FALLBACK_SYNC);
        }

        return NGX_OK;
    }

failed:

    ngx_log_error(NGX_LOG_ERR, fb->log, ngx_errno,
                  "omnibus kafka fallback: cannot append to \"%s\"",
                  fb->path.data);

    return NGX_ERROR;
}


/* appended lines on disk now, not within the batch */

ngx_int_t
ngx_omnibus_kafka_fallback_flush(ngx_omnibus_kafka_fallback_t *fb)
{
    if (fb->sync.timer_set) {
        ngx_del_timer(&fb->sync);
    }

    if (fb->fd != NGX_INVALID_FILE && fdatasync(fb->fd) == -1) {
        ngx_log_error(NGX_LOG_ERR, fb->log, ngx_errno,
                      "omnibus kafka fallback: fdatasync(\"%s\") failed",
                      fb->path.data);
        return NGX_ERROR;
    }

    return NGX_OK;
}


static void
ngx_omnibus_kafka_fallback_sync(ngx_event_t *ev)
{
    (void) ngx_omnibus_kafka_fallback_flush(ev->data);
}


/*
 * The records to replay, read whole.  NGX_DECLINED: there are none;
 * NGX_BUSY: a replay is under way.
 */

ngx_int_t
ngx_omnibus_kafka_fallback_take(ngx_omnibus_kafka_fallback_t *fb,
    ngx_pool_t *pool, ngx_str_t *records)
{
    ssize_t          n;
    ngx_int_t        rc;
    struct stat      st;

    if (fb->taken_fd != NGX_INVALID_FILE) {
        return NGX_BUSY;
    }

    rc = ngx_omnibus_kafka_fallback_open_taken(fb);
    if (rc != NGX_OK) {
        return rc;
    }

    /*
     * A barrier: the appends under way end before we read, and the next
     * ones see the name gone and go to a new file.  Not held while we
     * read, or every diverting worker would wait for it.
     */

    if (flock(fb->taken_fd, LOCK_EX) == -1
        || flock(fb->taken_fd, LOCK_UN) == -1
        || fstat(fb->taken_fd, &st) == -1)
    {
        goto failed;
    }

    records->len = st.st_size;
    records->data = ngx_pnalloc(pool, st.st_size + 1);
    if (records->data == NULL) {
        goto failed;
    }

    n = pread(fb->taken_fd, records->data, st.st_size, 0);
    if (n != st.st_size) {
        goto failed;
    }

    return NGX_OK;

failed:

    ngx_log_error(NGX_LOG_ERR, fb->log, ngx_errno,
                  "omnibus kafka fallback: cannot read \"%s\"",
                  fb->taken.data);

    ngx_omnibus_kafka_fallback_close(fb);

    return NGX_ERROR;
}


static ngx_int_t
ngx_omnibus_kafka_fallback_open_taken(ngx_omnibus_kafka_fallback_t *fb)
{
    ngx_fd_t      fd;
    struct flock  fl;
    struct stat   named, held;

    fd = open((char *) fb->taken.data, O_RDWR|O_CLOEXEC);

    if (fd == NGX_INVALID_FILE && ngx_errno == NGX_ENOENT) {

        if (link((char *) fb->path.data, (char *) fb->taken.data) == -1) {
            if (ngx_errno == NGX_ENOENT) {
                return NGX_DECLINED;
            }

            if (ngx_errno != NGX_EEXIST) {
                goto failed;
            }
        }

        fd = open((char *) fb->taken.data, O_RDWR|O_CLOEXEC);
    }

    if (fd == NGX_INVALID_FILE) {
        goto failed;
    }

    ngx_memzero(&fl, sizeof(struct flock));
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    fl.l_start = NGX_MAX_OFF_T_VALUE - 1;
    fl.l_len = 1;

    /* locked, and still the file of that name (not one a replay ended) */

    if (fcntl(fd, F_OFD_SETLK, &fl) == -1
        || fstat(fd, &held) == -1 || held.st_nlink == 0
        || stat((char *) fb->taken.data, &named) == -1
        || named.st_ino != held.st_ino || named.st_dev != held.st_dev)
    {
        (void) close(fd);
        return NGX_BUSY;
    }

    /* ours now; appends go to a new file from here on */

    if (stat((char *) fb->path.data, &named) == 0
        && named.st_ino == held.st_ino && named.st_dev == held.st_dev)
    {
        (void) unlink((char *) fb->path.data);
    }

    fb->taken_fd = fd;

    return NGX_OK;

failed:

    ngx_log_error(NGX_LOG_ERR, fb->log, ngx_errno,
                  "omnibus kafka fallback: cannot take \"%s\"",
                  fb->path.data);

    return NGX_ERROR;
}


/* replayed, and what was not acknowledged appended again */

void
ngx_omnibus_kafka_fallback_taken(ngx_omnibus_kafka_fallback_t *fb)
{
    struct stat  named, held;

    if (fb->taken_fd == NGX_INVALID_FILE) {
        return;
    }

    /* the name is still ours: we hold its lock */

    if (fstat(fb->taken_fd, &held) == 0
        && stat((char *) fb->taken.data, &named) == 0
        && named.st_ino == held.st_ino && named.st_dev == held.st_dev)
    {
        (void) unlink((char *) fb->taken.data);
    }

    (void) close(fb->taken_fd);
    fb->taken_fd = NGX_INVALID_FILE;
}


void
ngx_omnibus_kafka_fallback_close(ngx_omnibus_kafka_fallback_t *fb)
{
    if (fb->sync.timer_set) {
        ngx_del_timer(&fb->sync);
    }

    if (fb->fd != NGX_INVALID_FILE) {
        (void) fdatasync(fb->fd);
        (void) close(fb->fd);
        fb->fd = NGX_INVALID_FILE;
    }

    /* a replay cut short: its file stays for the next one */

    if (fb->taken_fd != NGX_INVALID_FILE) {
        (void) close(fb->taken_fd);
        fb->taken_fd = NGX_INVALID_FILE;
    }
}
