"""python -m converge_rules"""
from .cli import main

main()
