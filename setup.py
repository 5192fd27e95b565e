from setuptools import find_packages, setup

setup(
    name="tensorlite",
    version="0.1.0",
    description="A small reverse-mode autograd engine on NumPy and CuPy, and the GPT built on it",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.9",
    packages=find_packages(include=["tensorlite", "tensorlite.*", "models", "models.*", "train", "train.*",
                                    "benchmarks", "benchmarks.*"]),
    package_data={"train": ["books/*.txt.xz"]},   # the default book: a first run needs no network
    install_requires=["numpy>=1.22", "tqdm>=4.60"],
    extras_require={
        "cuda": ["cupy>=12"],
        "dev": ["pytest>=7", "hypothesis>=6", "matplotlib>=3.5"],   # matplotlib: the loss-curve tests
        "web": ["gradio>=4"],   # python -m train.web (the page to prompt a model)
        "plot": ["matplotlib>=3.5"],   # out_dir/loss.png at every evaluation, python -m train.plot
        # mpiexec -n N python -m train.gpt: mpi4py and an MPI from the package index (MPICH's wheel, Linux);
        # with a system MPI instead: pip install mpi4py (it builds against the mpicc on the PATH)
        "mpi": ["mpi4py>=3.1", "mpich; sys_platform == 'linux'"],
    },
)
