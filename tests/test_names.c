/* Sampler and schedule names as people paste them (host/cli/names.c) against the names the
 * sources define, collected by the oracle from A1111's and ComfyUI's code
 * (tools/oracle/sampler_names.py -> tests/data/sampler_names.json): every A1111 sampler
 * label, alias and old combined "<label> Karras" name, every scheduler label and name,
 * ComfyUI's sampler and scheduler names; each resolves to the library's name, which the
 * library accepts (vkd_gen_params_check), or (for the ones vkdiff does not offer) is
 * refused by it. (cli/names.h's table types share their names with sample/'s functions,
 * so the library is reached through its public API here.) */
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli/names.h"
#include "harness.h"
#include "vkdiff.h"

/* whether the library takes this sampler / schedule */
static int library_takes(const char *sampler, const char *schedule)
{
    vkd_gen_params gp;
    vkd_gen_params_init(&gp);
    gp.prompt = "a";
    gp.sampler = sampler ? sampler : "euler";
    gp.schedule = schedule ? schedule : "discrete";
    return vkd_gen_params_check(&gp) == VKD_OK;
}

static const cJSON *get(const cJSON *o, const char *key) { return cJSON_GetObjectItemCaseSensitive(o, key); }

static const char *str(const cJSON *o, const char *key)
{
    const cJSON *v = get(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* name resolves to want (NULL: the library refuses what it resolves to) */
static void check_sampler(const char *name, const char *want, const char *why)
{
    const char *sampler = name, *schedule = NULL;
    vkd_names_resolve(&sampler, &schedule, 0);
    if (want)
        TEST_CHECK(!strcmp(sampler, want) && library_takes(sampler, NULL), "%s '%s' -> '%s', want '%s'", why, name,
                   sampler, want);
    else
        TEST_CHECK(!library_takes(sampler, NULL), "%s '%s' is refused (vkdiff has no such sampler)", why, name);
}

static void check_schedule(const char *name, const char *sampler, const char *want, const char *why)
{
    const char *s = sampler, *schedule = name;
    vkd_names_resolve(&s, &schedule, 1);
    if (want)
        TEST_CHECK(schedule && !strcmp(schedule, want) && library_takes(s, schedule), "%s '%s' -> '%s', want '%s'",
                   why, name, schedule ? schedule : "(null)", want);
    else
        TEST_CHECK(!library_takes(s, schedule), "%s '%s' is refused", why, name);
}

/* ComfyUI's sampler name to vkdiff's: the oracle's map; its *_gpu variants differ only in
 * where the Brownian tree's noise is drawn, which vkdiff does not reproduce (it draws per
 * step), so they are the base sampler here */
static const char *comfy_want(const cJSON *map, const char *name)
{
    const char *w = str(map, name);
    size_t n = strlen(name);
    if (!w && n > 4 && !strcmp(name + n - 4, "_gpu")) {
        char base[64];
        snprintf(base, sizeof base, "%.*s", (int)(n - 4), name);
        w = str(map, base);
    }
    return w;
}

int main(void)
{
    char *text = test_read_file(test_data_path("sampler_names.json"), NULL);
    cJSON *root = text ? cJSON_Parse(text) : NULL;
    free(text);
    TEST_CHECK(root != NULL, "read %s", test_data_path("sampler_names.json"));
    if (!root)
        return test_finish();

    /* schedulers first: the samplers' "Automatic" maps through them */
    int n_sched = 0;
    const cJSON *s;
    cJSON_ArrayForEach(s, get(root, "schedulers")) {
        const char *label = str(s, "a1111_label"), *name = str(s, "a1111_name"), *want = str(s, "vkdiff");
        if (!strcmp(name, "automatic"))
            continue; /* resolved per sampler below */
        check_schedule(label, "euler", want, "A1111 scheduler label");
        check_schedule(name, "euler", want, "A1111 scheduler name");
        const cJSON *a;
        cJSON_ArrayForEach(a, get(s, "aliases")) check_schedule(a->valuestring, "euler", want, "A1111 scheduler alias");
        n_sched++;
    }
    TEST_CHECK(n_sched >= 11, "A1111 schedulers listed (%d)", n_sched);

    int n_samp = 0;
    cJSON_ArrayForEach(s, get(root, "samplers")) {
        const char *label = str(s, "a1111"), *want = str(s, "vkdiff");
        /* A1111's "UniPC" is its own timestep-space port; vkdiff runs ComfyUI's uni_pc for it
         * (docs/samplers.md) */
        if (!want && !strcmp(label, "UniPC"))
            want = "uni_pc";
        check_sampler(label, want, "A1111 sampler label");
        const cJSON *a;
        cJSON_ArrayForEach(a, get(s, "aliases")) check_sampler(a->valuestring, want, "A1111 sampler alias");
        if (!want)
            continue;
        n_samp++;
        /* Automatic: the sampler's options["scheduler"], else the model's discrete schedule */
        const char *sched = str(get(s, "options"), "scheduler"), *auto_want = "discrete";
        const cJSON *t;
        cJSON_ArrayForEach(t, get(root, "schedulers")) if (sched && !strcmp(str(t, "a1111_name"), sched)) auto_want =
            str(t, "vkdiff");
        check_schedule("Automatic", want, auto_want, label);
        /* the old combined name: "<label> Karras" */
        char combined[96];
        snprintf(combined, sizeof combined, "%s Karras", label);
        const char *cs = combined, *csch = NULL;
        vkd_names_resolve(&cs, &csch, 0);
        TEST_CHECK(!strcmp(cs, want) && csch && !strcmp(csch, "karras"), "'%s' -> %s + %s", combined, cs,
                   csch ? csch : "(none)");
        /* what the PNG text writes reads back as the same sampler */
        check_sampler(vkd_sampler_a1111(want), want, "infotext sampler name");
    }
    TEST_CHECK(n_samp >= 15, "A1111 samplers vkdiff runs (%d)", n_samp);

    /* ComfyUI: the mapped names resolve, the others are refused */
    const cJSON *comfy = get(root, "comfyui"), *map = get(comfy, "vkdiff");
    int n_comfy = 0;
    cJSON_ArrayForEach(s, get(comfy, "KSAMPLER_NAMES")) {
        check_sampler(s->valuestring, comfy_want(map, s->valuestring), "ComfyUI sampler");
        n_comfy++;
    }
    cJSON_ArrayForEach(s, get(comfy, "SAMPLER_NAMES")) check_sampler(s->valuestring, comfy_want(map, s->valuestring),
                                                                      "ComfyUI sampler");
    cJSON_ArrayForEach(s, get(comfy, "SCHEDULER_NAMES")) check_schedule(s->valuestring, "euler",
                                                                        str(map, s->valuestring), "ComfyUI scheduler");
    TEST_CHECK(n_comfy >= 20, "ComfyUI samplers listed (%d)", n_comfy);
    /* every library schedule writes a label that reads back as itself */
    for (int i = 0; i < vkd_n_schedule_names; i++)
        check_schedule(vkd_schedule_a1111_label(vkd_schedule_names[i].vkdiff), "euler", vkd_schedule_names[i].vkdiff,
                       "infotext schedule label");
    cJSON_Delete(root);
    return test_finish();
}
