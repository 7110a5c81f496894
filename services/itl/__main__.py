from services.itl.main import run

run()
