"""transformers pipelines on a saved LLaDA folder: text-generation (with the generation flags and logits processors
passed through to `generate`) and fill-mask (through `trust_remote_code`)."""

import pytest
import torch
from transformers import AutoModel, AutoTokenizer, LogitsProcessor, LogitsProcessorList, pipeline


@pytest.fixture(scope="module")
def saved(saved_model):
    return saved_model


@pytest.fixture(scope="module")
def generator(saved):
    return pipeline(
        "text-generation",
        model=AutoModel.from_pretrained(saved, trust_remote_code=True),
        tokenizer=AutoTokenizer.from_pretrained(saved),
    )


class OnlyWords(LogitsProcessor):
    def __init__(self, ids):
        self.ids = ids

    def __call__(self, input_ids, scores):
        allowed = torch.full_like(scores, float("-inf"))
        allowed[:, self.ids] = 0
        return scores + allowed


def test_text_generation_passes_flags_and_processors_to_generate(saved, generator):
    tokenizer = generator.tokenizer
    settings = dict(max_new_tokens=6, steps=6, repetition_penalty=1e4)
    text = generator("to be or", do_sample=False, return_full_text=False, **settings)[0]["generated_text"]
    inputs = tokenizer(["to be or"], return_tensors="pt")
    direct = generator.model.generate(**inputs, temperature=0.0, **settings)
    assert text == tokenizer.decode(direct[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    assert len(set(text.split())) == len(text.split()) == 6  # the penalty acted: no word twice
    words = tokenizer.convert_tokens_to_ids(["that", "is"])
    constrained = generator(
        "to be or",
        max_new_tokens=6,
        steps=6,
        return_full_text=False,
        logits_processor=LogitsProcessorList([OnlyWords(words)]),
    )[0]["generated_text"]
    assert set(constrained.split()) <= {"that", "is"} and constrained
    with pytest.raises(ValueError, match="`num_beams=2` has no meaning for diffusion sampling"):
        generator("to be or", max_new_tokens=6, num_beams=2)


def test_fill_mask_pipeline_with_remote_code(saved):
    fill = pipeline("fill-mask", model=str(saved), trust_remote_code=True)
    assert type(fill.model).__name__ == "LLaDAForMaskedDiffusion"
    predictions = fill("to be [MASK] not", top_k=3)
    assert len(predictions) == 3 and predictions[0]["score"] >= predictions[1]["score"] >= predictions[2]["score"]
    inputs = fill.tokenizer("to be [MASK] not", return_tensors="pt")
    logits = fill.model(**inputs).logits[0, 2]  # the mask is the third token
    assert predictions[0]["token"] == int(logits.argmax())
    assert predictions[0]["sequence"].split()[2] == predictions[0]["token_str"]


def test_text_generation_pipeline_calls_generate(saved_model):
    from transformers import AutoTokenizer, pipeline

    from llada import LLaDAForMaskedDiffusion

    generator = pipeline(
        "text-generation",
        model=LLaDAForMaskedDiffusion.from_pretrained(saved_model),
        tokenizer=AutoTokenizer.from_pretrained(saved_model),
    )
    outputs = generator(["to be or", "that is the question"], max_new_tokens=6, steps=3)
    assert [len(out) for out in outputs] == [1, 1]
    assert outputs[1][0]["generated_text"].startswith("that is the question")
