from services.cdm_registry.main import run

run()
