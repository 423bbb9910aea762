"""Tiny random diffusers pipelines for tests, built here and ``save_pretrained`` into a folder so the
generators load them through the real ``from_pretrained`` path (nothing is downloaded).

Every builder seeds torch itself, so two calls give identical weights.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

#: sample size of the tiny pixel-space DDPM U-Net (images 3×8×8)
DDPM_SIZE = 8
#: side of the tiny Stable Diffusion images (latents 4×(SD_SIZE/2)×(SD_SIZE/2))
SD_SIZE = 16


def _unet2d(num_class_embeds=None):
    from diffusers import UNet2DModel

    return UNet2DModel(
        sample_size=DDPM_SIZE, in_channels=3, out_channels=3, block_out_channels=(8, 16), layers_per_block=1,
        down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
        norm_num_groups=8, num_class_embeds=num_class_embeds,
    )


def save_tiny_ddpm(folder: Path, num_class_embeds: int | None = None) -> Path:
    """A ``DDPMPipeline`` (3×8×8, 100 training timesteps) in ``folder``; with ``num_class_embeds`` its
    U-Net is class-conditional (``UNet2DModel(num_class_embeds=...)``)."""
    import torch
    from diffusers import DDPMPipeline, DDPMScheduler

    torch.manual_seed(0)
    pipe = DDPMPipeline(unet=_unet2d(num_class_embeds), scheduler=DDPMScheduler(num_train_timesteps=100))
    pipe.save_pretrained(folder)
    return Path(folder)


def write_clip_tokenizer_files(folder: Path) -> tuple[Path, Path]:
    """``vocab.json`` and ``merges.txt`` of a byte-level CLIP BPE vocabulary: every byte symbol (alone
    and word-final), a few merges and the two special tokens, so any Unicode text tokenizes."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    # the byte -> printable symbol table of byte-level BPE (GPT-2, CLIP)
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    extra = iter(range(256, 512))
    symbols = [chr(b) if b in printable else chr(next(extra)) for b in range(256)]
    tokens = symbols + [s + "</w>" for s in symbols]
    merges = ["p h", "o t", "ph ot", "o f</w>"]
    tokens += ["ph", "ot", "phot", "of</w>", "<|startoftext|>", "<|endoftext|>"]
    vocab = {token: i for i, token in enumerate(dict.fromkeys(tokens))}
    vocab_file, merges_file = folder / "vocab.json", folder / "merges.txt"
    vocab_file.write_text(json.dumps(vocab), encoding="utf-8")
    merges_file.write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    return vocab_file, merges_file


def _sd_parts(cross_attention_dim: int = 32):
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel

    unet = UNet2DConditionModel(
        sample_size=SD_SIZE // 2, in_channels=4, out_channels=4, block_out_channels=(8, 16), layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=cross_attention_dim, attention_head_dim=4, norm_num_groups=4,
    )
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 8), layers_per_block=1,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"), norm_num_groups=4, sample_size=SD_SIZE,
    )
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              clip_sample=False, set_alpha_to_one=False, num_train_timesteps=100)
    return unet, vae, scheduler


def save_tiny_stable_diffusion(folder: Path) -> Path:
    """A text-to-image ``StableDiffusionPipeline`` (16×16 images) with a tiny ``CLIPTextModel`` and a
    tokenizer from files written here; no safety checker."""
    import torch
    from diffusers import StableDiffusionPipeline
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    folder = Path(folder)
    torch.manual_seed(0)
    unet, vae, scheduler = _sd_parts()
    with tempfile.TemporaryDirectory() as source:
        write_clip_tokenizer_files(Path(source))
        tokenizer = CLIPTokenizer.from_pretrained(source, model_max_length=77)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
        max_position_embeddings=77, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    ))
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                   scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    pipe.save_pretrained(folder)
    return folder


def save_tiny_image_variation(folder: Path) -> Path:
    """A ``StableDiffusionImageVariationPipeline`` (16×16 images) with a tiny
    ``CLIPVisionModelWithProjection`` image encoder and its ``CLIPImageProcessor``."""
    import torch
    from diffusers import StableDiffusionImageVariationPipeline
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    folder = Path(folder)
    torch.manual_seed(0)
    unet, vae, scheduler = _sd_parts()
    image_encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(
        hidden_size=32, projection_dim=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
        image_size=32, patch_size=8,
    ))
    processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    pipe = StableDiffusionImageVariationPipeline(vae=vae, image_encoder=image_encoder, unet=unet, scheduler=scheduler,
                                                 safety_checker=None, feature_extractor=processor,
                                                 requires_safety_checker=False)
    pipe.save_pretrained(folder)
    return folder
