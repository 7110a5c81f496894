from services.registry.main import run

run()
