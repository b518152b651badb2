
/*
 * An NDJSON batch: split into lines by ngx_omnibus_ndjson_next(), as
 * ngx_omnibus_publish_batch() does, and each line validated as JSON:
 * lines end at '\n', one trailing '\r' is dropped, empty lines are
 * skipped, line numbers count every line.
 *
 * Properties: each line is a non-empty slice of the batch that starts
 * after a '\n' and holds none, its number is 1 + the '\n' before it, and
 * it validates in place (a slice of the body, as the module does) as it
 * does on an exact copy: the validator reads nothing past a line's end.
 */


#include "fuzz_common.h"
#include <ngx_omnibus_core.h>


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char      *p, *last, *body, *copy, *q, buf[256], cbuf[256];
    ngx_int_t    valid, cvalid;
    ngx_str_t    payload, err, cerr;
    ngx_uint_t   line, n, newlines;

    fuzz_init();

    body = fuzz_dup(data, size, 0);

    q = body;
    newlines = 0;

    /* from here to the loop's end as in ngx_omnibus_publish_batch() */

    p = body;
    last = body + size;
    line = 0;
    n = 0;

    while (ngx_omnibus_ndjson_next(&p, last, &payload) == NGX_OK) {
        line++;

        if (payload.len == 0) {
            continue;
        }

        n++;

        err.data = buf;
        err.len = sizeof(buf);

        valid = ngx_omnibus_json_valid(payload.data, payload.len, &err);

        /* the module's loop ends here: the harness's checks follow */

        fuzz_assert(valid == NGX_OK || valid == NGX_DECLINED);
        fuzz_assert(err.len <= sizeof(buf));

        fuzz_assert(payload.data + payload.len <= last);
        fuzz_assert(payload.data == body || payload.data[-1] == '\n');
        fuzz_assert(ngx_strlchr(payload.data, payload.data + payload.len,
                                '\n') == NULL);
        fuzz_assert(payload.data + payload.len == last
                    || payload.data[payload.len] == '\n'
                    || (payload.data[payload.len] == '\r'
                        && (payload.data + payload.len + 1 == last
                            || payload.data[payload.len + 1] == '\n')));
        fuzz_assert(p == last || p[-1] == '\n');

        for ( /* void */ ; q < payload.data; q++) {
            newlines += (*q == '\n');
        }

        fuzz_assert(line == newlines + 1);

        copy = fuzz_dup(payload.data, payload.len, 0);

        cerr.data = cbuf;
        cerr.len = sizeof(cbuf);

        cvalid = ngx_omnibus_json_valid(copy, payload.len, &cerr);

        free(copy);

        fuzz_assert(cvalid == valid);

        if (valid == NGX_DECLINED) {
            fuzz_assert(cerr.len == err.len
                        && ngx_memcmp(cerr.data, err.data, err.len) == 0);
        }
    }

    fuzz_assert(n <= line);

    free(body);

    return 0;
}
