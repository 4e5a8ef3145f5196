"""The demo Datanet's records: a glossary of fine-tuning terms written for this
project (licence CC0-1.0), asked about in a few question forms.

No Django here, so the training engine's tests and benchmarks can use it too.
"""

from __future__ import annotations

LICENCE = "CC0-1.0"
GLOSSARY = [
    (
        "LoRA",
        "a fine-tuning method that freezes the base model and trains two small low-rank matrices added to chosen weight matrices",
        "training a rank-8 adapter on the attention projections of a 7B model",
    ),
    (
        "QLoRA",
        "LoRA on top of a base model quantised to 4 bits, which cuts the memory needed to fine-tune large models",
        "fine-tuning a 13B model on a single 24 GB GPU",
    ),
    (
        "DoRA",
        "a LoRA variant that splits each weight into a magnitude and a direction and adapts them separately",
        "replacing LoRA with DoRA at the same rank for slightly better accuracy",
    ),
    (
        "rank",
        "the inner dimension of a LoRA update; a higher rank can express more change but trains more parameters",
        "choosing rank 16 instead of 8 for a harder task",
    ),
    (
        "alpha",
        "the LoRA scaling factor; the update is multiplied by alpha divided by the rank",
        "setting alpha to twice the rank",
    ),
    ("learning rate", "the step size of each optimiser update", "using 2e-4 for LoRA and 2e-5 for full fine-tuning"),
    (
        "warmup",
        "a short phase at the start of training where the learning rate rises from zero to its target",
        "warming up over the first 3% of steps",
    ),
    (
        "cosine schedule",
        "a learning-rate schedule that decays the rate along a half cosine curve after warmup",
        "decaying from 2e-4 to near zero by the last step",
    ),
    ("epoch", "one full pass over the training data", "training for three epochs on a small dataset"),
    (
        "batch size",
        "the number of examples whose gradients are averaged in one optimiser step",
        "a batch of 8 sequences per device",
    ),
    (
        "gradient accumulation",
        "summing gradients over several small batches before one optimiser step to simulate a larger batch",
        "four accumulation steps of batch 4 to act like batch 16",
    ),
    (
        "gradient checkpointing",
        "recomputing activations during the backward pass instead of storing them, trading compute for memory",
        "fitting longer sequences on the same GPU",
    ),
    ("sequence length", "the maximum number of tokens in one training example", "truncating examples to 1,024 tokens"),
    (
        "packing",
        "placing several short examples in one sequence so that less compute is spent on padding",
        "packing chat turns into 2,048-token rows",
    ),
    (
        "padding-free batching",
        "concatenating examples without pad tokens and restarting positions per example so they do not attend to each other",
        "raising throughput on a length-skewed dataset",
    ),
    (
        "loss masking",
        "computing the loss only on answer tokens so the model is not trained to repeat prompts",
        "ignoring the instruction tokens in an alpaca record",
    ),
    (
        "chat template",
        "the model-specific format that turns a list of messages into one token sequence",
        "wrapping user and assistant turns in the model's special tokens",
    ),
    (
        "tokenizer",
        "the component that splits text into the integer tokens a model reads",
        "a byte-pair-encoding tokenizer with a 32k vocabulary",
    ),
    (
        "adapter",
        "the small set of trained weights that LoRA produces, stored apart from the base model",
        "an adapter folder with adapter_config.json and adapter_model.safetensors",
    ),
    (
        "merging",
        "adding an adapter's update into the base weights to produce a standalone model",
        "exporting merged weights for a runtime without LoRA support",
    ),
    ("base model", "the pretrained model that fine-tuning starts from", "a 1B Llama-architecture model"),
    (
        "overfitting",
        "when a model memorises its training data and gets worse on new data",
        "eval loss rising while train loss keeps falling",
    ),
    (
        "eval loss",
        "the loss measured on held-out data that the model does not train on",
        "checking eval loss every 50 steps",
    ),
    (
        "perplexity",
        "the exponential of the average loss per token; lower means the model is less surprised by the text",
        "a perplexity of 12 on the eval set",
    ),
    (
        "checkpoint",
        "a saved copy of the training state from which a run can resume",
        "saving every 100 steps and resuming after a crash",
    ),
    (
        "mixed precision",
        "training with 16-bit floats for most operations while keeping sensitive values in 32 bits",
        "using bf16 on a modern GPU",
    ),
    (
        "bf16",
        "a 16-bit floating-point format with the range of fp32 and less precision, well suited to training",
        "enabling bf16 when the GPU supports it",
    ),
    ("quantisation", "storing weights with fewer bits to save memory and bandwidth", "loading a model in 4-bit nf4"),
    (
        "NF4",
        "a 4-bit data type whose levels are spaced for normally distributed weights, used by QLoRA",
        "quantising the frozen base model to nf4 with double quantisation",
    ),
    (
        "double quantisation",
        "quantising the quantisation constants themselves to save a little more memory",
        "saving about 0.4 bits per parameter in QLoRA",
    ),
    ("target modules", "the weight matrices that receive LoRA adapters", "adapting q_proj, k_proj, v_proj and o_proj"),
    ("dropout", "randomly zeroing some values during training to reduce overfitting", "a LoRA dropout of 0.05"),
    (
        "seed",
        "the number that fixes random choices so a run can be repeated",
        "seed 42 for shuffling and initialisation",
    ),
    (
        "instruction tuning",
        "fine-tuning on pairs of instructions and desired answers so a model follows requests",
        "training on alpaca-style records",
    ),
    (
        "Datanet",
        "a community dataset for one domain whose owner decides who may read, contribute and validate",
        "a legal Q&A Datanet with three validators",
    ),
    (
        "contribution",
        "one record added to a Datanet by a contributor, checked by validators before it is accepted",
        "an instruction with its input and output",
    ),
    (
        "validator",
        "a member who accepts or rejects pending contributions",
        "rejecting a record that copies copyrighted text",
    ),
    (
        "reputation",
        "a contributor's standing in a Datanet, computed from accepted and rejected work",
        "a reputation of 0.9 after many accepted records",
    ),
    (
        "Merkle tree",
        "a tree of hashes whose root commits to every leaf, so any change to a leaf changes the root",
        "proving a record is in version 3 with a short inclusion proof",
    ),
    (
        "inclusion proof",
        "the list of sibling hashes that shows a leaf belongs under a root",
        "checking one record against a published version root",
    ),
    (
        "consistency proof",
        "hashes that show an older tree is a prefix of a newer one, so history was only appended to",
        "showing version 2 extends version 1 without rewriting it",
    ),
    (
        "attribution",
        "measuring how much each training record influenced a model or an answer",
        "crediting the contributor whose records taught a fact",
    ),
    (
        "retrieval",
        "finding the stored records most relevant to a query",
        "showing the top records beside a chat answer",
    ),
    (
        "BM25",
        "a classic keyword-ranking formula based on term frequency and document length",
        "ranking records that share rare words with the question",
    ),
    (
        "embedding",
        "a vector that represents the meaning of a text so similar texts are close together",
        "a 384-dimensional sentence embedding",
    ),
    (
        "hallucination",
        "a fluent answer that is not supported by facts or sources",
        "inventing a court case that does not exist",
    ),
    (
        "system prompt",
        "instructions given to a chat model before the user's messages",
        "telling the model to answer in plain language",
    ),
    (
        "temperature",
        "a sampling setting; higher values make generated text more varied, lower values more predictable",
        "temperature 0.2 for factual answers",
    ),
    (
        "top-p",
        "sampling from the smallest set of tokens whose probabilities add up to p",
        "top-p 0.9 to cut off unlikely tokens",
    ),
    (
        "greedy decoding",
        "always choosing the most likely next token",
        "getting the same answer every time for the same prompt",
    ),
    ("throughput", "how many tokens a system processes per second", "measuring tokens per second during training"),
    ("latency", "the time from a request to its answer, or to its first token", "a first token within 200 ms"),
    (
        "OpenAI-compatible API",
        "an HTTP API with the same routes and shapes as OpenAI's, so existing clients work unchanged",
        "calling a fine-tuned model with the official openai client",
    ),
    (
        "streaming",
        "sending generated tokens to the client as they are produced",
        "showing an answer word by word in the chat page",
    ),
    (
        "safetensors",
        "a safe, fast file format for storing tensors without executing code on load",
        "saving an adapter as adapter_model.safetensors",
    ),
    (
        "model card",
        "a document describing a model: its base, data, parameters and metrics",
        "a README.md shipped with each exported adapter",
    ),
    (
        "Celery worker",
        "a background process that takes jobs from a queue and runs them",
        "a GPU worker consuming the gpu queue",
    ),
    (
        "websocket",
        "a long-lived connection over which a server can push messages to the browser",
        "streaming loss values to the training dashboard",
    ),
]
FORMS = [
    ("What is {term}?", "", "{Term} is {definition}."),
    ("Explain {term} in one sentence for a non-engineer.", "", "In short, {term} means {definition}."),
    ("Give an example of {term}.", "", "An example of {term}: {example}."),
    (
        "Is the following a fair description of {term}? Answer yes or no, then explain.",
        "{definition}",
        "Yes. {Term} is {definition}.",
    ),
    ("Which fine-tuning term matches this description?", "{definition}", "That describes {term}."),
]


def demo_records() -> list[dict]:
    records = []
    for term, definition, example in GLOSSARY:
        cap = term[0].upper() + term[1:]
        for instruction, inp, output in FORMS:
            fill = {"term": term, "Term": cap, "definition": definition, "example": example}
            records.append(
                {
                    "instruction": instruction.format(**fill),
                    "input": inp.format(**fill),
                    "output": output.format(**fill),
                }
            )
    return records
