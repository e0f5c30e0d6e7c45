"""Constants more than one module needs, defined once."""

EOS = "<|endoftext|>"  # end of text: eos and pad token of every lab tokenizer, the separator between stories
HUB_DATASET = "roneneldan/TinyStories"  # the real TinyStories data set on the Hugging Face hub
