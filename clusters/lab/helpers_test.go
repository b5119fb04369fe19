package lab

import "errors"

func (l *Lab) ownerProcForTest() (*Proc, error) {
	p := l.ownerProc()
	if p == nil {
		return nil, errors.New("cannot read this process's start time")
	}
	return p, nil
}
