/* peft.c: reads PEFT LoRA adapters (adapter_config.json + adapter_model.safetensors). */
#include "adapter.h"

lk_status peft_load(lora_adapter *ad, const char *path)
{
    (void)ad;
    return lk_fail(LK_ERR_UNSUPPORTED, "%s: PEFT adapters are not readable yet", path);
}
