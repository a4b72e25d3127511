"""Stable Diffusion's three networks in plain PyTorch, written from the reference sources.

The modules' state_dict keys are exactly the CompVis single-file checkpoint names, so a
state dict loads from (and saves to) an A1111-style .safetensors unchanged:

  model.diffusion_model.*                      UNetModel
      CompVis stable-diffusion ldm/modules/diffusionmodules/openaimodel.py (UNetModel,
      ResBlock, Downsample, Upsample, TimestepEmbedSequential), .../util.py
      (timestep_embedding, normalization = GroupNorm32(32, C), eps 1e-5 by default),
      ldm/modules/attention.py (SpatialTransformer, BasicTransformerBlock,
      CrossAttention, FeedForward, GEGLU, Normalize = GroupNorm(32, C, eps=1e-6));
      SD2's linear proj_in/proj_out from Stability-AI/stablediffusion
      ldm/modules/attention.py (use_linear) and configs/stable-diffusion/v2-inference*.yaml
  first_stage_model.*                          AutoencoderKL
      CompVis ldm/modules/diffusionmodules/model.py (Encoder, Decoder, ResnetBlock,
      AttnBlock, Upsample, Downsample, Normalize eps 1e-6), ldm/models/autoencoder.py
      (quant_conv / post_quant_conv), ldm/modules/distributions (mean = first half)
  cond_stage_model.transformer.text_model.*    SD1: HF transformers CLIPTextModel
      (modeling_clip.py: CLIPTextEmbeddings, CLIPAttention, CLIPMLP quick_gelu,
      CLIPEncoderLayer pre-LN, final_layer_norm; LayerNorm eps 1e-5)
  cond_stage_model.model.*                     SD2: open_clip TextTransformer as
      Stability-AI ldm/modules/encoders/modules.py FrozenOpenCLIPEmbedder keeps it
      (token_embedding, positional_embedding, transformer.resblocks.N with
      nn.MultiheadAttention in_proj_weight [3W, W] = q;k;v, ln_1/ln_2, mlp.c_fc/c_proj with
      exact GELU, ln_final, text_projection, logit_scale); layer "penultimate": the last
      resblock is skipped, then ln_final.
  conditioner.embedders.0.transformer.text_model.*   SDXL: HF CLIPTextModel (ViT-L),
      Stability-AI generative-models sgm/modules/encoders/modules.py FrozenCLIPEmbedder
      layer "hidden", layer_idx 11 (configs/inference/sd_xl_base.yaml): hidden_states[-2],
      no final_layer_norm; no position_ids buffer in the file.
  conditioner.embedders.1.model.*              SDXL: open_clip ViT-bigG text tower,
      sgm FrozenOpenCLIPEmbedder2 (layer "penultimate", legacy False,
      always_return_pooled): context = penultimate resblock output without ln_final;
      pooled = ln_final(last) at argmax(tokens) @ text_projection. The UNet adds
      label_emb(y) (sgm openaimodel.py num_classes "sequential"), y = pooled ++
      ConcatTimestepEmbedderND(256) of original size, crop, target size.

Nothing here calls or mirrors vkdiff's C code; every architectural choice cites its source.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


# ------------------------------------------------------------------------ UNet ----
def timestep_embedding(t, dim, max_period=10000):
    """CompVis util.py timestep_embedding: [cos | sin], freqs exp(-ln(max_period) i / half).
    t may be fractional (k-diffusion's sigma_to_t interpolates)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(0, half, dtype=torch.float32) / half)
    args = t[:, None].float() * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb


def unet_norm(c):
    # util.py normalization(): GroupNorm32(32, channels) -> nn.GroupNorm default eps 1e-5
    return nn.GroupNorm(32, c, eps=1e-5)


class ResBlock(nn.Module):
    """openaimodel.py ResBlock (use_scale_shift_norm=False, no up/down, 1x1 skip when the
    channel count changes): h = out_layers(in_layers(x) + emb_layers(emb)); skip(x) + h"""
    def __init__(self, cin, cout, emb_dim):
        super().__init__()
        self.in_layers = nn.Sequential(unet_norm(cin), nn.SiLU(), nn.Conv2d(cin, cout, 3, padding=1))
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_dim, cout))
        self.out_layers = nn.Sequential(unet_norm(cout), nn.SiLU(), nn.Dropout(0.0),
                                        nn.Conv2d(cout, cout, 3, padding=1))
        self.skip_connection = nn.Identity() if cin == cout else nn.Conv2d(cin, cout, 1)

    def forward(self, x, emb):
        h = self.in_layers(x)
        h = h + self.emb_layers(emb)[:, :, None, None]
        h = self.out_layers(h)
        return self.skip_connection(x) + h


class CrossAttention(nn.Module):
    """attention.py CrossAttention: q/k/v without bias, scale dim_head^-0.5, to_out.0 with bias"""
    def __init__(self, query_dim, context_dim, heads, dim_head):
        super().__init__()
        inner = heads * dim_head
        self.heads, self.scale = heads, dim_head ** -0.5
        self.to_q = nn.Linear(query_dim, inner, bias=False)
        self.to_k = nn.Linear(context_dim, inner, bias=False)
        self.to_v = nn.Linear(context_dim, inner, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner, query_dim), nn.Dropout(0.0))

    def forward(self, x, context=None):
        context = x if context is None else context
        q, k, v = self.to_q(x), self.to_k(context), self.to_v(context)
        b, n, _ = q.shape
        # 'b n (h d) -> (b h) n d': heads are contiguous slices of the inner dimension
        sp = lambda t: t.reshape(b, t.shape[1], self.heads, -1).permute(0, 2, 1, 3)
        q, k, v = sp(q), sp(k), sp(v)
        s = torch.matmul(q, k.transpose(-1, -2)) * self.scale
        o = torch.matmul(s.softmax(dim=-1), v)
        return self.to_out(o.permute(0, 2, 1, 3).reshape(b, n, -1))


class GEGLU(nn.Module):
    """attention.py GEGLU: x, gate = proj(x).chunk(2, -1); x * gelu(gate) (value half first)"""
    def __init__(self, dim_in, dim_out):
        super().__init__()
        self.proj = nn.Linear(dim_in, dim_out * 2)

    def forward(self, x):
        x, gate = self.proj(x).chunk(2, dim=-1)
        return x * F.gelu(gate)


class FeedForward(nn.Module):
    def __init__(self, dim, mult=4):
        super().__init__()
        inner = dim * mult
        self.net = nn.Sequential(GEGLU(dim, inner), nn.Dropout(0.0), nn.Linear(inner, dim))

    def forward(self, x):
        return self.net(x)


class BasicTransformerBlock(nn.Module):
    """attention.py BasicTransformerBlock: pre-LN (eps 1e-5) self-attn, cross-attn, GEGLU FF,
    each with a residual"""
    def __init__(self, dim, heads, dim_head, context_dim):
        super().__init__()
        self.attn1 = CrossAttention(dim, dim, heads, dim_head)
        self.ff = FeedForward(dim)
        self.attn2 = CrossAttention(dim, context_dim, heads, dim_head)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)

    def forward(self, x, context):
        x = self.attn1(self.norm1(x)) + x
        x = self.attn2(self.norm2(x), context) + x
        x = self.ff(self.norm3(x)) + x
        return x


class SpatialTransformer(nn.Module):
    """attention.py SpatialTransformer. norm = Normalize: GroupNorm(32, C, eps=1e-6).
    SD1: proj_in/out are 1x1 convs applied in NCHW; SD2 (use_linear, Stability-AI
    stablediffusion): Linear layers applied after 'b c h w -> b (h w) c'."""
    def __init__(self, ch, heads, dim_head, depth, context_dim, use_linear):
        super().__init__()
        inner = heads * dim_head
        self.use_linear = use_linear
        self.norm = nn.GroupNorm(32, ch, eps=1e-6)
        self.proj_in = nn.Linear(ch, inner) if use_linear else nn.Conv2d(ch, inner, 1)
        self.transformer_blocks = nn.ModuleList(
            [BasicTransformerBlock(inner, heads, dim_head, context_dim) for _ in range(depth)])
        self.proj_out = nn.Linear(inner, ch) if use_linear else nn.Conv2d(inner, ch, 1)

    def forward(self, x, context):
        b, c, h, w = x.shape
        x_in = x
        x = self.norm(x)
        if not self.use_linear:
            x = self.proj_in(x)
        x = x.permute(0, 2, 3, 1).reshape(b, h * w, -1)
        if self.use_linear:
            x = self.proj_in(x)
        for blk in self.transformer_blocks:
            x = blk(x, context)
        if self.use_linear:
            x = self.proj_out(x)
        x = x.reshape(b, h, w, -1).permute(0, 3, 1, 2)
        if not self.use_linear:
            x = self.proj_out(x)
        return x + x_in


class Downsample(nn.Module):
    """openaimodel.py Downsample(use_conv=True): 3x3 conv, stride 2, padding 1 (key 'op')"""
    def __init__(self, ch):
        super().__init__()
        self.op = nn.Conv2d(ch, ch, 3, stride=2, padding=1)

    def forward(self, x):
        return self.op(x)


class Upsample(nn.Module):
    """openaimodel.py Upsample(use_conv=True): nearest x2, then 3x3 conv padding 1.
    output_size: the size of the skip connection it meets when that is not 2x (an odd
    size halved by a stride-2 conv), as diffusers' Upsample2D(output_size=...) does."""
    def __init__(self, ch):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x, output_size=None):
        if output_size is None:
            return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))
        return self.conv(F.interpolate(x, size=output_size, mode="nearest"))


class TimestepEmbedSequential(nn.Sequential):
    def forward(self, x, emb, context, up_size=None):
        for layer in self:
            if isinstance(layer, ResBlock):
                x = layer(x, emb)
            elif isinstance(layer, SpatialTransformer):
                x = layer(x, context)
            elif isinstance(layer, Upsample):
                x = layer(x, up_size)
            else:
                x = layer(x)
        return x


class UNetModel(nn.Module):
    """openaimodel.py UNetModel with use_spatial_transformer=True, legacy=False.
    heads: num_heads if num_head_channels == -1 (SD1: 8) else ch // num_head_channels (SD2: 64).
    attention_levels: the levels (index into channel_mult) holding a SpatialTransformer
    (openaimodel uses attention_resolutions = downsample factors 2**level).

    SDXL (Stability-AI generative-models sgm/modules/diffusionmodules/openaimodel.py,
    configs/inference/sd_xl_base.yaml):
      transformer_depth: an int (SD1/SD2: every level) or one depth per level (sgm:
        `if isinstance(transformer_depth, int): transformer_depth = len(channel_mult) *
        [transformer_depth]`; input and output blocks of level l use transformer_depth[l]);
      transformer_depth_middle: the middle block's depth; sgm has
        `transformer_depth_middle = transformer_depth[-1]` (None here = that, or the int);
      adm_in_channels with num_classes "sequential": `self.label_emb = nn.Sequential(
        nn.Sequential(linear(adm_in_channels, time_embed_dim), nn.SiLU(),
        linear(time_embed_dim, time_embed_dim)))` (keys label_emb.0.0 / label_emb.0.2) and
        in forward `emb = self.time_embed(t_emb)`, then `emb = emb + self.label_emb(y)`."""
    def __init__(self, in_channels=4, out_channels=4, model_channels=320, channel_mult=(1, 2, 4, 4),
                 num_res_blocks=2, attention_levels=(0, 1, 2), num_heads=8, num_head_channels=-1,
                 transformer_depth=1, context_dim=768, use_linear_in_transformer=False,
                 transformer_depth_middle=None, adm_in_channels=None):
        super().__init__()
        mc = model_channels
        ted = mc * 4
        self.model_channels = mc
        self._levels = len(channel_mult)
        if isinstance(transformer_depth, int):
            transformer_depth = len(channel_mult) * [transformer_depth]
        depths = list(transformer_depth)
        mid_depth = depths[-1] if transformer_depth_middle is None else transformer_depth_middle

        def heads_of(ch):
            if num_head_channels == -1:
                return num_heads, ch // num_heads
            return ch // num_head_channels, num_head_channels

        def xf(ch, depth):
            h, d = heads_of(ch)
            return SpatialTransformer(ch, h, d, depth, context_dim, use_linear_in_transformer)

        self.time_embed = nn.Sequential(nn.Linear(mc, ted), nn.SiLU(), nn.Linear(ted, ted))
        self.adm_in_channels = adm_in_channels
        if adm_in_channels:
            self.label_emb = nn.Sequential(nn.Sequential(nn.Linear(adm_in_channels, ted), nn.SiLU(),
                                                         nn.Linear(ted, ted)))
        self.input_blocks = nn.ModuleList([TimestepEmbedSequential(nn.Conv2d(in_channels, mc, 3, padding=1))])
        chans, ch = [mc], mc
        for level, mult in enumerate(channel_mult):
            for _ in range(num_res_blocks):
                layers = [ResBlock(ch, mult * mc, ted)]
                ch = mult * mc
                if level in attention_levels and depths[level]:
                    layers.append(xf(ch, depths[level]))
                self.input_blocks.append(TimestepEmbedSequential(*layers))
                chans.append(ch)
            if level != len(channel_mult) - 1:
                self.input_blocks.append(TimestepEmbedSequential(Downsample(ch)))
                chans.append(ch)
        self.middle_block = TimestepEmbedSequential(ResBlock(ch, ch, ted), xf(ch, mid_depth), ResBlock(ch, ch, ted))
        self.output_blocks = nn.ModuleList()
        for level, mult in list(enumerate(channel_mult))[::-1]:
            for i in range(num_res_blocks + 1):
                layers = [ResBlock(ch + chans.pop(), mc * mult, ted)]
                ch = mc * mult
                if level in attention_levels and depths[level]:
                    layers.append(xf(ch, depths[level]))
                if level and i == num_res_blocks:
                    layers.append(Upsample(ch))
                self.output_blocks.append(TimestepEmbedSequential(*layers))
        self.out = nn.Sequential(unet_norm(ch), nn.SiLU(), nn.Conv2d(mc, out_channels, 3, padding=1))

    def forward(self, x, timesteps, context, y=None):
        emb = self.time_embed(timestep_embedding(timesteps, self.model_channels))
        if self.adm_in_channels:   # sgm openaimodel: assert (y is not None) == (self.num_classes is not None)
            assert y is not None and y.shape == (x.shape[0], self.adm_in_channels), "SDXL UNet needs y [N, adm]"
            emb = emb + self.label_emb(y)
        hs, h = [], x
        for m in self.input_blocks:
            h = m(h, emb, context)
            hs.append(h)
        h = self.middle_block(h, emb, context)
        # diffusers UNet2DConditionModel (forward_upsample_size): when the input does not
        # halve evenly, each upsampling goes to the size of the next skip connection
        odd = any(s % 2 ** (self._levels - 1) for s in x.shape[-2:])
        for m in self.output_blocks:
            h = m(torch.cat([h, hs.pop()], dim=1), emb, context, hs[-1].shape[-2:] if odd and hs else None)
        return self.out(h)


# ------------------------------------------------------------------------- VAE ----
def vae_norm(c):
    # model.py Normalize: GroupNorm(32, C, eps=1e-6, affine=True)
    return nn.GroupNorm(32, c, eps=1e-6)


class VaeResnetBlock(nn.Module):
    """model.py ResnetBlock with temb_channels=0: norm1, swish, conv1, norm2, swish, conv2;
    1x1 nin_shortcut when channels change"""
    def __init__(self, cin, cout):
        super().__init__()
        self.norm1, self.conv1 = vae_norm(cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.norm2, self.conv2 = vae_norm(cout), nn.Conv2d(cout, cout, 3, padding=1)
        if cin != cout:
            self.nin_shortcut = nn.Conv2d(cin, cout, 1)
        self.cin, self.cout = cin, cout

    def forward(self, x):
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return (self.nin_shortcut(x) if self.cin != self.cout else x) + h


class VaeAttnBlock(nn.Module):
    """model.py AttnBlock: one head over the H*W positions, q/k/v/proj_out 1x1 convs, scale C^-0.5"""
    def __init__(self, c):
        super().__init__()
        self.norm = vae_norm(c)
        self.q, self.k, self.v = nn.Conv2d(c, c, 1), nn.Conv2d(c, c, 1), nn.Conv2d(c, c, 1)
        self.proj_out = nn.Conv2d(c, c, 1)

    def forward(self, x):
        h_ = self.norm(x)
        q, k, v = self.q(h_), self.k(h_), self.v(h_)
        b, c, h, w = q.shape
        q = q.reshape(b, c, h * w).permute(0, 2, 1)       # b, hw, c
        k = k.reshape(b, c, h * w)                         # b, c, hw
        w_ = torch.bmm(q, k) * (int(c) ** (-0.5))
        w_ = F.softmax(w_, dim=2)
        v = v.reshape(b, c, h * w)
        h_ = torch.bmm(v, w_.permute(0, 2, 1)).reshape(b, c, h, w)
        return x + self.proj_out(h_)


class VaeUpsample(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class VaeDownsample(nn.Module):
    """model.py Downsample(with_conv=True): pad (0,1,0,1) with zeros, then 3x3 stride 2, no padding"""
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, stride=2, padding=0)

    def forward(self, x):
        return self.conv(F.pad(x, (0, 1, 0, 1), mode="constant", value=0))


class VaeMid(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.block_1, self.attn_1, self.block_2 = VaeResnetBlock(c, c), VaeAttnBlock(c), VaeResnetBlock(c, c)

    def forward(self, x):
        return self.block_2(self.attn_1(self.block_1(x)))


class VaeLevel(nn.Module):
    pass


class Encoder(nn.Module):
    """model.py Encoder (attn_resolutions=[] as in SD's first_stage_config, double_z)"""
    def __init__(self, ch, ch_mult, num_res_blocks, z_channels, in_channels=3):
        super().__init__()
        self.conv_in = nn.Conv2d(in_channels, ch, 3, padding=1)
        in_mult = (1,) + tuple(ch_mult)
        self.down = nn.ModuleList()
        for i, m in enumerate(ch_mult):
            lvl = VaeLevel()
            bi, bo = ch * in_mult[i], ch * m
            lvl.block = nn.ModuleList()
            for _ in range(num_res_blocks):
                lvl.block.append(VaeResnetBlock(bi, bo))
                bi = bo
            if i != len(ch_mult) - 1:
                lvl.downsample = VaeDownsample(bi)
            self.down.append(lvl)
        self.mid = VaeMid(bi)
        self.norm_out = vae_norm(bi)
        self.conv_out = nn.Conv2d(bi, 2 * z_channels, 3, padding=1)

    def forward(self, x):
        h = self.conv_in(x)
        for lvl in self.down:
            for b in lvl.block:
                h = b(h)
            if hasattr(lvl, "downsample"):
                h = lvl.downsample(h)
        h = self.mid(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class Decoder(nn.Module):
    """model.py Decoder: conv_in, mid (res, attn, res), up levels run from the last index
    down to 0 (self.up.insert(0, up) stores level i at up.i), num_res_blocks+1 blocks
    each, upsample on all levels but 0; norm_out, swish, conv_out. No tanh, no clamp."""
    def __init__(self, ch, ch_mult, num_res_blocks, z_channels, out_ch=3):
        super().__init__()
        bi = ch * ch_mult[-1]
        self.conv_in = nn.Conv2d(z_channels, bi, 3, padding=1)
        self.mid = VaeMid(bi)
        ups = []
        for i in reversed(range(len(ch_mult))):
            lvl = VaeLevel()
            lvl.block = nn.ModuleList()
            bo = ch * ch_mult[i]
            for _ in range(num_res_blocks + 1):
                lvl.block.append(VaeResnetBlock(bi, bo))
                bi = bo
            if i != 0:
                lvl.upsample = VaeUpsample(bi)
            ups.insert(0, lvl)
        self.up = nn.ModuleList(ups)
        self.norm_out = vae_norm(bi)
        self.conv_out = nn.Conv2d(bi, out_ch, 3, padding=1)

    def forward(self, z):
        h = self.mid(self.conv_in(z))
        for i in reversed(range(len(self.up))):
            for b in self.up[i].block:
                h = b(h)
            if hasattr(self.up[i], "upsample"):
                h = self.up[i].upsample(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class AutoencoderKL(nn.Module):
    """ldm/models/autoencoder.py AutoencoderKL (embed_dim = z_channels = 4)"""
    def __init__(self, ch=128, ch_mult=(1, 2, 4, 4), num_res_blocks=2, z_channels=4, with_encoder=True):
        super().__init__()
        if with_encoder:   # a decoder-only file (as some VAE-less exports) has neither of these
            self.encoder = Encoder(ch, ch_mult, num_res_blocks, z_channels)
            self.quant_conv = nn.Conv2d(2 * z_channels, 2 * z_channels, 1)
        self.decoder = Decoder(ch, ch_mult, num_res_blocks, z_channels)
        self.post_quant_conv = nn.Conv2d(z_channels, z_channels, 1)
        self.z_channels = z_channels

    def decode(self, z):
        """z: the first-stage latent, i.e. the sampler's latent already divided by the
        scale factor (LatentDiffusion.decode_first_stage does z = 1/scale_factor * z)."""
        return self.decoder(self.post_quant_conv(z))

    def encode_mean(self, x):
        """posterior mean (DiagonalGaussianDistribution: mean, logvar = chunk(moments, 2, 1)),
        before LatentDiffusion multiplies it by scale_factor"""
        return self.quant_conv(self.encoder(x))[:, :self.z_channels]

    def encode_posterior(self, x):
        """-> (mean, logvar) of the posterior, logvar clamped to [-30, 20]: CompVis
        ldm/modules/distributions/distributions.py and diffusers models/autoencoders/vae.py
        DiagonalGaussianDistribution (`self.mean, self.logvar = torch.chunk(parameters, 2,
        dim=1)`, `self.logvar = torch.clamp(self.logvar, -30.0, 20.0)`); std = exp(0.5 logvar),
        sample = mean + std * randn(mean.shape). Not multiplied by scale_factor."""
        mean, logvar = torch.chunk(self.quant_conv(self.encoder(x)), 2, dim=1)
        return mean, torch.clamp(logvar, -30.0, 20.0)


# ------------------------------------------------------------- text encoders ----
def causal_mask(n):
    # CLIP / open_clip build_attention_mask: -inf above the diagonal
    return torch.full((n, n), float("-inf")).triu(1)


class HFCLIPAttention(nn.Module):
    """transformers modeling_clip.py CLIPAttention: q_proj(x) * head_dim^-0.5, causal mask"""
    def __init__(self, w, heads):
        super().__init__()
        self.heads = heads
        self.k_proj, self.v_proj = nn.Linear(w, w), nn.Linear(w, w)
        self.q_proj, self.out_proj = nn.Linear(w, w), nn.Linear(w, w)

    def forward(self, x, mask):
        b, n, w = x.shape
        d = w // self.heads
        sp = lambda t: t.reshape(b, n, self.heads, d).permute(0, 2, 1, 3)
        q, k, v = sp(self.q_proj(x) * d ** -0.5), sp(self.k_proj(x)), sp(self.v_proj(x))
        s = torch.matmul(q, k.transpose(-1, -2)) + mask
        o = torch.matmul(s.softmax(dim=-1), v)
        return self.out_proj(o.permute(0, 2, 1, 3).reshape(b, n, w))


class HFCLIPMLP(nn.Module):
    def __init__(self, w, mlp):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(w, mlp), nn.Linear(mlp, w)

    def forward(self, x):
        h = self.fc1(x)
        return self.fc2(h * torch.sigmoid(1.702 * h))   # ACT2FN["quick_gelu"] (clip-vit-large-patch14 config)


class HFCLIPLayer(nn.Module):
    def __init__(self, w, heads, mlp):
        super().__init__()
        self.self_attn = HFCLIPAttention(w, heads)
        self.layer_norm1 = nn.LayerNorm(w, eps=1e-5)
        self.mlp = HFCLIPMLP(w, mlp)
        self.layer_norm2 = nn.LayerNorm(w, eps=1e-5)

    def forward(self, x, mask):
        x = x + self.self_attn(self.layer_norm1(x), mask)
        return x + self.mlp(self.layer_norm2(x))


class _NS(nn.Module):
    pass


class CLIPTextModel(nn.Module):
    """HF CLIPTextModel, keys text_model.{embeddings,encoder.layers.N,final_layer_norm}.*"""
    def __init__(self, width=768, layers=12, heads=12, mlp=3072, vocab=49408, positions=77, store_position_ids=True):
        super().__init__()
        tm = _NS()
        tm.embeddings = _NS()
        tm.embeddings.token_embedding = nn.Embedding(vocab, width)
        tm.embeddings.position_embedding = nn.Embedding(positions, width)
        # a buffer real SD1 checkpoints carry (as I64); SDXL single files are written
        # without it here (store_position_ids=False: not in the state dict)
        tm.embeddings.register_buffer("position_ids", torch.arange(positions, dtype=torch.int64)[None],
                                      persistent=store_position_ids)
        tm.encoder = _NS()
        tm.encoder.layers = nn.ModuleList([HFCLIPLayer(width, heads, mlp) for _ in range(layers)])
        tm.final_layer_norm = nn.LayerNorm(width, eps=1e-5)
        self.text_model = tm

    def hidden_states(self, ids):
        """[embeddings, layer 0 out, ..., layer L-1 out] as HF output_hidden_states"""
        tm = self.text_model
        n = ids.shape[1]
        x = tm.embeddings.token_embedding(ids) + tm.embeddings.position_embedding(tm.embeddings.position_ids[:, :n])
        mask = causal_mask(n)
        hs = [x]
        for layer in tm.encoder.layers:
            x = layer(x, mask)
            hs.append(x)
        return hs

    def encode(self, ids, clip_skip=1):
        """SD1 context. clip_skip 1: last_hidden_state (last layer, then final_layer_norm,
        FrozenCLIPEmbedder layer 'last'); clip_skip N: A1111 sd_hijack_clip.py
        FrozenCLIPEmbedderWithCustomWords.encode_with_transformers:
        final_layer_norm(hidden_states[-N])."""
        return self.text_model.final_layer_norm(self.hidden_states(ids)[-clip_skip])

    def encode_hidden(self, ids, layer_idx=-2):
        """SDXL's first text encoder: sgm/modules/encoders/modules.py FrozenCLIPEmbedder with
        layer "hidden", layer_idx 11 (configs/inference/sd_xl_base.yaml): `z =
        outputs.hidden_states[self.layer_idx]`, NO final_layer_norm. With ViT-L's 12 layers
        hidden_states has 13 entries, so index 11 = -2 (the output of the penultimate layer),
        which is what diffusers pipeline_stable_diffusion_xl.py encode_prompt takes
        (`prompt_embeds.hidden_states[-2]`); the tiny model has 3 layers, so -2 here."""
        return self.hidden_states(ids)[layer_idx]


class OpenCLIPResblock(nn.Module):
    def __init__(self, w, heads, mlp):
        super().__init__()
        self.ln_1 = nn.LayerNorm(w, eps=1e-5)
        self.attn = nn.MultiheadAttention(w, heads)    # in_proj_weight [3W, W] (q;k;v), out_proj
        self.ln_2 = nn.LayerNorm(w, eps=1e-5)
        self.mlp = nn.Sequential()
        self.mlp.add_module("c_fc", nn.Linear(w, mlp))
        self.mlp.add_module("gelu", nn.GELU())            # open_clip act_layer default nn.GELU (erf)
        self.mlp.add_module("c_proj", nn.Linear(mlp, w))

    def forward(self, x, mask):  # x: [L, N, D] (open_clip's LND)
        y = self.ln_1(x)
        x = x + self.attn(y, y, y, need_weights=False, attn_mask=mask)[0]
        return x + self.mlp(self.ln_2(x))


class OpenCLIPText(nn.Module):
    """open_clip text tower as SD2 stores it under cond_stage_model.model.*"""
    def __init__(self, width=1024, layers=24, heads=16, mlp=4096, vocab=49408, positions=77, proj=1024):
        super().__init__()
        self.positional_embedding = nn.Parameter(torch.empty(positions, width))
        self.text_projection = nn.Parameter(torch.empty(width, proj))   # unused by SD2
        self.token_embedding = nn.Embedding(vocab, width)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))  # unused by SD2
        self.transformer = _NS()
        self.transformer.resblocks = nn.ModuleList([OpenCLIPResblock(width, heads, mlp) for _ in range(layers)])
        self.ln_final = nn.LayerNorm(width, eps=1e-5)

    def encode(self, ids, layer_idx=1):
        """FrozenOpenCLIPEmbedder.encode_with_transformer: layer 'penultimate' -> layer_idx 1:
        text_transformer_forward stops before resblock len-layer_idx; then ln_final."""
        n = ids.shape[1]
        x = self.token_embedding(ids) + self.positional_embedding[:n]
        x = x.permute(1, 0, 2)
        mask = causal_mask(n)
        blocks = self.transformer.resblocks
        for i, r in enumerate(blocks):
            if i == len(blocks) - layer_idx:
                break
            x = r(x, mask)
        return self.ln_final(x.permute(1, 0, 2))

    def encode_sdxl(self, ids):
        """SDXL's second text encoder: sgm/modules/encoders/modules.py FrozenOpenCLIPEmbedder2
        with layer "penultimate", always_return_pooled=True, legacy=False
        (configs/inference/sd_xl_base.yaml). text_transformer_forward records
        outputs["penultimate"] = the input of the last resblock and outputs["last"] = the
        output of all resblocks; with legacy=False encode_with_transformer applies ln_final
        only to "last" and pools it: `x[torch.arange(x.shape[0]), text.argmax(dim=-1)] @
        self.model.text_projection` (the EOT id 49407 is the highest id in each row);
        forward returns (z["penultimate"], z["pooled"]): the context is NOT layer-normed.
        Returns (context [N, L, W], pooled [N, proj])."""
        n = ids.shape[1]
        x = self.token_embedding(ids) + self.positional_embedding[:n]
        x = x.permute(1, 0, 2)
        mask = causal_mask(n)
        penultimate = None
        for i, r in enumerate(self.transformer.resblocks):
            if i == len(self.transformer.resblocks) - 1:
                penultimate = x.permute(1, 0, 2)
            x = r(x, mask)
        o = self.ln_final(x.permute(1, 0, 2))
        pooled = o[torch.arange(o.shape[0]), ids.argmax(dim=-1)] @ self.text_projection
        return penultimate, pooled


# ------------------------------------------------------------------ whole file ----
def size_embedding(values, outdim=256):
    """sgm/modules/encoders/modules.py ConcatTimestepEmbedderND(outdim=256): x [N, d] ->
    rearrange "b d -> (b d)", Timestep(outdim) = sgm/modules/diffusionmodules/util.py
    timestep_embedding(t, outdim) (max_period 10000, [cos | sin], the same function as
    CompVis'), then "(b d) d2 -> b (d d2)": the d embeddings side by side, in order."""
    values = torch.as_tensor(values, dtype=torch.float32)
    b, d = values.shape
    return timestep_embedding(values.reshape(b * d), outdim).reshape(b, d * outdim)


def sdxl_y(pooled, original_size, crop_coords_top_left, target_size):
    """SDXL's `y` (vector) conditioning: sgm GeneralConditioner concatenates every embedder's
    2-D output on dim 1 (KEY2CATDIM["vector"] = 1) in the order of sd_xl_base.yaml's
    emb_models: FrozenOpenCLIPEmbedder2's pooled vector, then ConcatTimestepEmbedderND of
    original_size_as_tuple (h, w), crop_coords_top_left (top, left), target_size_as_tuple
    (h, w) (diffusers _get_add_time_ids: original_size + crops_coords_top_left + target_size).
    Each size argument: a pair applied to every row."""
    n = pooled.shape[0]
    sizes = torch.tensor([list(original_size) + list(crop_coords_top_left) + list(target_size)],
                         dtype=torch.float32).expand(n, 6)
    return torch.cat([pooled, size_embedding(sizes, 256)], dim=1)


class StableDiffusion(nn.Module):
    """A CompVis LatentDiffusion's weights: model.diffusion_model, first_stage_model,
    cond_stage_model (transformer for SD1, model for SD2); SDXL (family "sdxl", sgm
    DiffusionEngine): conditioner.embedders.0.transformer (HF CLIP ViT-L) and
    conditioner.embedders.1.model (OpenCLIP ViT-bigG text tower) instead of cond_stage_model,
    scale_factor 0.13025 (sd_xl_base.yaml)."""
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        u, v, t = cfg["unet"], cfg["vae"], cfg["text"]
        self.model = _NS()
        self.model.diffusion_model = UNetModel(**u)
        self.first_stage_model = AutoencoderKL(**v)
        if cfg["family"] == "sdxl":
            self.conditioner = _NS()
            e0, e1 = _NS(), _NS()
            e0.transformer = CLIPTextModel(**t, store_position_ids=False)
            e1.model = OpenCLIPText(**cfg["text_g"])
            self.conditioner.embedders = nn.ModuleList([e0, e1])
            self.scale_factor = cfg.get("scale_factor", 0.13025)
            return
        self.cond_stage_model = _NS()
        if cfg["family"] == "sd1":
            self.cond_stage_model.transformer = CLIPTextModel(**t)
        else:
            self.cond_stage_model.model = OpenCLIPText(**t)
        self.scale_factor = cfg.get("scale_factor", 0.18215)

    @property
    def unet(self):
        return self.model.diffusion_model

    @property
    def vae(self):
        return self.first_stage_model

    def encode_text_sdxl(self, tokens_l, tokens_g):
        """-> (context [N, 77, Wl + Wg], pooled [N, proj], context_l, context_g).
        GeneralConditioner concatenates the "crossattn" (3-D) outputs on dim 2
        (KEY2CATDIM["crossattn"] = 2) in embedder order: CLIP-L first, then bigG.
        tokens_l: HF CLIPTokenizer ids (pad 49407), tokens_g: open_clip.tokenize ids (pad 0)."""
        ctx_l = self.conditioner.embedders[0].transformer.encode_hidden(tokens_l, -2)
        ctx_g, pooled = self.conditioner.embedders[1].model.encode_sdxl(tokens_g)
        return torch.cat([ctx_l, ctx_g], dim=-1), pooled, ctx_l, ctx_g

    def encode_text(self, ids, clip_skip=1):
        if self.cfg["family"] == "sd1":
            return self.cond_stage_model.transformer.encode(ids, clip_skip)
        return self.cond_stage_model.model.encode(ids, 1)
