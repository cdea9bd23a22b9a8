module studyarrivals

go 1.19
