
/*
 * A Kafka cluster for the tests: librdkafka's mock brokers (they speak
 * the real protocol, so NGINX and kcat use them as they would a real
 * cluster) in a process of their own.
 *
 *   kafka-mock BROKERS [TOPIC:PARTITIONS ...]
 *
 * prints the bootstrap list on the first line, then takes one command a
 * line on stdin and answers "ok" (or "error ...") to each:
 *
 *   down ID | up ID              a broker stops answering, or comes back
 *   errors APIKEY COUNT CODE     the next COUNT requests of APIKEY fail
 *   topic NAME PARTITIONS        create a topic
 *
 * It exits at the end of its input.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>


static int
topic(rd_kafka_mock_cluster_t *mc, const char *name, int partitions)
{
    rd_kafka_resp_err_t  err;

    err = rd_kafka_mock_topic_create(mc, name, partitions, 3);
    if (err) {
        printf("error %s\n", rd_kafka_err2str(err));
        return -1;
    }

    return 0;
}


int
main(int argc, char **argv)
{
    int                       brokers, i, id, n, code, apikey;
    char                      line[512], name[256], errstr[512];
    rd_kafka_t               *rk;
    rd_kafka_conf_t          *conf;
    rd_kafka_resp_err_t      *errs;
    rd_kafka_mock_cluster_t  *mc;

    if (argc < 2 || (brokers = atoi(argv[1])) < 1) {
        fprintf(stderr, "usage: kafka-mock BROKERS [TOPIC:PARTITIONS ...]\n");
        return 2;
    }

    setvbuf(stdout, NULL, _IOLBF, 0);

    /* the mock cluster runs on threads of a handle of its own */

    conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof(errstr))) {
        fprintf(stderr, "%s\n", errstr);
        return 1;
    }

    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (rk == NULL) {
        fprintf(stderr, "%s\n", errstr);
        return 1;
    }

    mc = rd_kafka_mock_cluster_new(rk, brokers);
    if (mc == NULL) {
        fprintf(stderr, "cannot create the mock cluster\n");
        return 1;
    }

    for (i = 2; i < argc; i++) {
        if (sscanf(argv[i], "%255[^:]:%d", name, &n) != 2
            || topic(mc, name, n) != 0)
        {
            fprintf(stderr, "bad topic \"%s\"\n", argv[i]);
            return 1;
        }
    }

    printf("%s\n", rd_kafka_mock_cluster_bootstraps(mc));

    while (fgets(line, sizeof(line), stdin)) {

        if (sscanf(line, "down %d", &id) == 1) {
            rd_kafka_mock_broker_set_down(mc, id);

        } else if (sscanf(line, "up %d", &id) == 1) {
            rd_kafka_mock_broker_set_up(mc, id);

        } else if (sscanf(line, "errors %d %d %d", &apikey, &n, &code) == 3
                   && n > 0 && n < 100000)
        {
            errs = malloc(n * sizeof(rd_kafka_resp_err_t));
            if (errs == NULL) {
                return 1;
            }

            for (i = 0; i < n; i++) {
                errs[i] = (rd_kafka_resp_err_t) code;
            }

            rd_kafka_mock_push_request_errors_array(mc, (int16_t) apikey, n,
                                                    errs);
            free(errs);

        } else if (sscanf(line, "topic %255s %d", name, &n) == 2) {
            if (topic(mc, name, n) != 0) {
                continue;
            }

        } else {
            printf("error unknown command\n");
            continue;
        }

        printf("ok\n");
    }

    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(rk);

    return 0;
}
