"""The offline demo hub: tiny real models with fixed seeds, their manifests and a registry folder.

    families.py  the two tiny families (demo-sd1, demo-sd2) as data, and the tokenizer's vocabulary
    models.py    seeded model builders (pipeline, ControlNet, tokenizer); torch imported inside functions
    writers.py   deterministic files from those models (diffusers layout, LDM single file, LoRAs, embedding)
    hub.py       building, opening and registering the hub: build_demo_hub, open_demo_hub, register_demo_hub

Importing this package imports nothing else.
"""
