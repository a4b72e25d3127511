#!/usr/bin/python3
"""The sampler / scheduler names of A1111 and ComfyUI, copied from their sources, with the
vkdiff name each maps to (issue 27).

    /usr/bin/python3 tools/oracle/sampler_names.py  ->  tests/data/sampler_names.json

Provenance (what was read, through the public-code index; commits are the index's):
  A1111 modules/sd_samplers_kdiffusion.py  samplers_k_diffusion. The index holds the
      AUTOMATIC1111 repo only at pre-1.6 commits (7f20051, 01a40c6). The 1.10 list below
      (scheduler defaults per sampler, 'DPM++ 2M SDE Heun', 'DPM++ 3M SDE', 'Restart',
      no '... Karras' entries) was read from a derivative (a Forge/reForge fork that keeps
      A1111's list and adds its own samplers after it; the fork's additions are left out)
      and agrees with the 1.10 release as the author knows it. Not read at tag v1.10.x.
  A1111 modules/sd_samplers_timesteps.py   samplers_timesteps (AUTOMATIC1111 1c77b18:
      DDIM, PLMS, UniPC); 'DDIM CFG++' (v1.10) from a derivative of the 1.10 file.
  A1111 modules/sd_schedulers.py           schedulers (AUTOMATIC1111 02b0092)
  A1111 modules/sd_samplers_extra.py       restart_sampler (AUTOMATIC1111 255da37)
  ComfyUI comfy/samplers.py / comfy/sampler_names.py  KSAMPLER_NAMES, SCHEDULER_NAMES,
      SAMPLER_NAMES (comfy/sampler_names.py at 040a324; an older comfy/samplers.py at
      75e5d3d has the shorter lists). A newer index entry (179c2d3) also lists
      "dpmpp_2m_sde_heun", "dpmpp_2m_sde_heun_gpu", "gradient_estimation_cfg_pp",
      "seeds_2", "seeds_3", "sa_solver", "sa_solver_pece" (recorded under "newer").
"""
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "..", "tests", "data", "sampler_names.json")

KD = "A1111 modules/sd_samplers_kdiffusion.py samplers_k_diffusion (v1.10)"
TS = "A1111 modules/sd_samplers_timesteps.py samplers_timesteps"

# (a1111 label, function, aliases, options, vkdiff name, comfyui name)
A1111_SAMPLERS = [
    ("DPM++ 2M", "sample_dpmpp_2m", ["k_dpmpp_2m"], {"scheduler": "karras"}, "dpm++2m", "dpmpp_2m"),
    ("DPM++ SDE", "sample_dpmpp_sde", ["k_dpmpp_sde"],
     {"scheduler": "karras", "second_order": True, "brownian_noise": True}, "dpm++sde", "dpmpp_sde"),
    ("DPM++ 2M SDE", "sample_dpmpp_2m_sde", ["k_dpmpp_2m_sde"],
     {"scheduler": "exponential", "brownian_noise": True}, "dpm++2m_sde", "dpmpp_2m_sde"),
    ("DPM++ 2M SDE Heun", "sample_dpmpp_2m_sde", ["k_dpmpp_2m_sde_heun"],
     {"scheduler": "exponential", "brownian_noise": True, "solver_type": "heun"}, "dpm++2m_sde_heun",
     "dpmpp_2m_sde_heun"),
    ("DPM++ 2S a", "sample_dpmpp_2s_ancestral", ["k_dpmpp_2s_a"],
     {"scheduler": "karras", "uses_ensd": True, "second_order": True}, "dpm++2s_a", "dpmpp_2s_ancestral"),
    ("DPM++ 3M SDE", "sample_dpmpp_3m_sde", ["k_dpmpp_3m_sde"],
     {"scheduler": "exponential", "discard_next_to_last_sigma": True, "brownian_noise": True}, "dpm++3m_sde",
     "dpmpp_3m_sde"),
    ("Euler a", "sample_euler_ancestral", ["k_euler_a", "k_euler_ancestral"], {"uses_ensd": True}, "euler_a",
     "euler_ancestral"),
    ("Euler", "sample_euler", ["k_euler"], {}, "euler", "euler"),
    ("LMS", "sample_lms", ["k_lms"], {}, "lms", "lms"),
    ("Heun", "sample_heun", ["k_heun"], {"second_order": True}, "heun", "heun"),
    ("DPM2", "sample_dpm_2", ["k_dpm_2"],
     {"scheduler": "karras", "discard_next_to_last_sigma": True, "second_order": True}, "dpm2", "dpm_2"),
    ("DPM2 a", "sample_dpm_2_ancestral", ["k_dpm_2_a"],
     {"scheduler": "karras", "discard_next_to_last_sigma": True, "uses_ensd": True, "second_order": True},
     "dpm2_a", "dpm_2_ancestral"),
    ("DPM fast", "sample_dpm_fast", ["k_dpm_fast"], {"uses_ensd": True}, None, "dpm_fast"),
    ("DPM adaptive", "sample_dpm_adaptive", ["k_dpm_ad"], {"uses_ensd": True}, None, "dpm_adaptive"),
    ("Restart", "sd_samplers_extra.restart_sampler", ["restart"], {"scheduler": "karras", "second_order": True},
     "restart", None),
]
A1111_TIMESTEP_SAMPLERS = [
    ("DDIM", "sd_samplers_timesteps_impl.ddim", ["ddim"], {}, "ddim", "ddim"),
    ("DDIM CFG++", "sd_samplers_timesteps_impl.ddim_cfgpp", ["ddim_cfgpp"], {}, None, None),
    ("PLMS", "sd_samplers_timesteps_impl.plms", ["plms"], {}, None, None),
    ("UniPC", "sd_samplers_timesteps_impl.unipc", ["unipc"], {}, None, None),
]

# A1111 modules/sd_schedulers.py schedulers: Scheduler(name, label, function, default_rho,
# need_inner_model, aliases)
A1111_SCHEDULERS = [
    ("automatic", "Automatic", None, {}, None, None),
    ("uniform", "Uniform", "uniform (inner_model.get_sigmas)", {"need_inner_model": True}, "discrete", None),
    ("karras", "Karras", "k_diffusion.sampling.get_sigmas_karras", {"default_rho": 7.0}, "karras", "karras"),
    ("exponential", "Exponential", "k_diffusion.sampling.get_sigmas_exponential", {}, "exponential", "exponential"),
    ("polyexponential", "Polyexponential", "k_diffusion.sampling.get_sigmas_polyexponential",
     {"default_rho": 1.0}, "polyexponential", None),
    ("sgm_uniform", "SGM Uniform", "sgm_uniform", {"need_inner_model": True, "aliases": ["SGMUniform"]},
     "sgm_uniform", "sgm_uniform"),
    ("kl_optimal", "KL Optimal", "kl_optimal", {}, "kl_optimal", "kl_optimal"),
    ("align_your_steps", "Align Your Steps", "get_align_your_steps_sigmas", {}, "ays",
     "AlignYourStepsScheduler node (comfy_extras/nodes_align_your_steps.py), not in SCHEDULER_NAMES"),
    ("simple", "Simple", "simple_scheduler", {"need_inner_model": True}, "simple", "simple"),
    ("normal", "Normal", "normal_scheduler", {"need_inner_model": True}, "normal", "normal"),
    ("ddim", "DDIM", "ddim_scheduler", {"need_inner_model": True}, "ddim_uniform", "ddim_uniform"),
    ("beta", "Beta", "beta_scheduler", {"need_inner_model": True}, "beta", "beta"),
    ("karras_exponential", "Karras Exponential", "karras_exponential_scheduler", {}, None, None),
]

COMFY_KSAMPLER_NAMES = ["euler", "euler_cfg_pp", "euler_ancestral", "euler_ancestral_cfg_pp", "heun", "heunpp2",
                        "dpm_2", "dpm_2_ancestral", "lms", "dpm_fast", "dpm_adaptive", "dpmpp_2s_ancestral",
                        "dpmpp_2s_ancestral_cfg_pp", "dpmpp_sde", "dpmpp_sde_gpu", "dpmpp_2m", "dpmpp_2m_cfg_pp",
                        "dpmpp_2m_sde", "dpmpp_2m_sde_gpu", "dpmpp_3m_sde", "dpmpp_3m_sde_gpu", "ddpm", "lcm",
                        "ipndm", "ipndm_v", "deis", "res_multistep", "res_multistep_cfg_pp",
                        "res_multistep_ancestral", "res_multistep_ancestral_cfg_pp", "gradient_estimation",
                        "er_sde"]
COMFY_KSAMPLER_NAMES_NEWER = ["euler", "euler_cfg_pp", "euler_ancestral", "euler_ancestral_cfg_pp", "heun",
                              "heunpp2", "dpm_2", "dpm_2_ancestral", "lms", "dpm_fast", "dpm_adaptive",
                              "dpmpp_2s_ancestral", "dpmpp_2s_ancestral_cfg_pp", "dpmpp_sde", "dpmpp_sde_gpu",
                              "dpmpp_2m", "dpmpp_2m_cfg_pp", "dpmpp_2m_sde", "dpmpp_2m_sde_gpu",
                              "dpmpp_2m_sde_heun", "dpmpp_2m_sde_heun_gpu", "dpmpp_3m_sde", "dpmpp_3m_sde_gpu",
                              "ddpm", "lcm", "ipndm", "ipndm_v", "deis", "res_multistep", "res_multistep_cfg_pp",
                              "res_multistep_ancestral", "res_multistep_ancestral_cfg_pp", "gradient_estimation",
                              "gradient_estimation_cfg_pp", "er_sde", "seeds_2", "seeds_3", "sa_solver",
                              "sa_solver_pece"]
COMFY_SCHEDULER_NAMES = ["normal", "karras", "exponential", "sgm_uniform", "simple", "ddim_uniform", "beta",
                         "linear_quadratic", "kl_optimal"]
COMFY_EXTRA = ["ddim", "uni_pc", "uni_pc_bh2"]


def main():
    samplers = []
    for src, rows in ((KD, A1111_SAMPLERS), (TS, A1111_TIMESTEP_SAMPLERS)):
        for label, fn, aliases, opts, vk, comfy in rows:
            samplers.append({"a1111": label, "aliases": aliases, "function": fn, "options": opts,
                             "vkdiff": vk, "comfyui": comfy, "source": src})
    schedulers = []
    for name, label, fn, opts, vk, comfy in A1111_SCHEDULERS:
        schedulers.append({"a1111_label": label, "a1111_name": name, "aliases": opts.get("aliases", []),
                           "function": fn, "default_rho": opts.get("default_rho", -1),
                           "need_inner_model": opts.get("need_inner_model", False),
                           "vkdiff": vk, "comfyui": comfy,
                           "source": "A1111 modules/sd_schedulers.py schedulers (commit 02b0092)"})
    out = {
        "generated_by": "tools/oracle/sampler_names.py",
        "samplers": samplers,
        "schedulers": schedulers,
        "comfyui": {
            "KSAMPLER_NAMES": COMFY_KSAMPLER_NAMES,
            "KSAMPLER_NAMES_newer": COMFY_KSAMPLER_NAMES_NEWER,
            "SCHEDULER_NAMES": COMFY_SCHEDULER_NAMES,
            "SAMPLER_NAMES": COMFY_KSAMPLER_NAMES + COMFY_EXTRA,
            "source": "ComfyUI comfy/sampler_names.py (040a324; formerly in comfy/samplers.py): "
                      "SAMPLER_NAMES = KSAMPLER_NAMES + ['ddim', 'uni_pc', 'uni_pc_bh2']; "
                      "KSAMPLER_NAMES_newer from a later index entry (179c2d3)",
            "vkdiff": {"euler": "euler", "euler_ancestral": "euler_a", "heun": "heun", "dpm_2": "dpm2",
                       "dpm_2_ancestral": "dpm2_a", "lms": "lms", "dpmpp_2s_ancestral": "dpm++2s_a",
                       "dpmpp_sde": "dpm++sde", "dpmpp_2m": "dpm++2m", "dpmpp_2m_sde": "dpm++2m_sde",
                       "dpmpp_2m_sde_heun": "dpm++2m_sde_heun", "dpmpp_3m_sde": "dpm++3m_sde", "lcm": "lcm",
                       "ddim": "ddim", "uni_pc": "uni_pc", "uni_pc_bh2": "uni_pc_bh2",
                       "normal": "normal", "karras": "karras", "exponential": "exponential",
                       "sgm_uniform": "sgm_uniform", "simple": "simple", "ddim_uniform": "ddim_uniform",
                       "beta": "beta", "kl_optimal": "kl_optimal"},
        },
        "notes": {
            "a1111_infotext": "A1111 1.6+ writes 'Sampler: <label>' and, when the schedule is not Automatic, "
                              "'Schedule type: <Scheduler.label>' (sd_samplers_kdiffusion.KDiffusionSampler."
                              "get_sigmas sets p.extra_generation_params['Schedule type'] = scheduler.label). "
                              "Older infotexts carry the schedule in the sampler label ('DPM++ 2M Karras', "
                              "'DPM++ SDE Karras', 'DPM++ 2M SDE Karras', 'LMS Karras', 'DPM2 Karras', "
                              "'DPM2 a Karras', 'DPM++ 2S a Karras', aliases 'k_*_ka'); A1111 1.6+ maps such "
                              "old labels to sampler + 'Karras' when reading infotexts "
                              "(modules/sd_samplers.py, not read here).",
            "automatic": "Schedule 'Automatic' = the sampler's options['scheduler'] if present, else the "
                         "model's discrete schedule (inner_model.get_sigmas = vkdiff 'discrete'); e.g. "
                         "'DPM++ 2M SDE' with Automatic runs on the exponential schedule, 'DPM2' on karras.",
            "ddim_uniform": "A1111's scheduler named 'ddim' (label 'DDIM') is ComfyUI's 'ddim_uniform'; "
                            "the sampler 'DDIM' is a different thing.",
        },
    }
    with open(OUT, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print(f"wrote {os.path.normpath(OUT)}")


if __name__ == "__main__":
    main()
